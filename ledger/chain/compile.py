"""Compile contracts/*.sol into the committed JSON artifacts under ledger/chain/build/.

Development-time only: runtime code loads the artifacts (`ledger.chain.artifact`) and never
needs a compiler. The compiler is solc-js from npm (package.json pins it), driven through
py-solc-x's standard-JSON interface:

    python -m ledger.chain.compile           # rewrite ledger/chain/build/*.json
    python -m ledger.chain.compile --check   # exit 1 if a committed artifact is stale

Everything that changes the bytecode is pinned here (compiler version, optimizer, EVM version)
and recorded in the artifact next to the source's SHA-256, so a stale artifact is detectable
without a compiler and reproducible with one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ledger.errors import CompileError
from ledger.settings import LedgerSettings

SOLC_VERSION = "0.8.30"
# Both chains we run on execute Cancun bytecode: eth-tester's py-evm backend runs the Prague
# VM, anvil runs whatever --hardfork says (the tests pin prague). Prague added no opcodes that
# solc would use, so "cancun" keeps the code portable to nodes a fork behind.
EVM_VERSION = "cancun"
OPTIMIZER_RUNS = 200
CONTRACTS = ("ProvenanceLedger", "RecordAnchor")

REPO = Path(__file__).resolve().parents[2]
CONTRACTS_DIR = REPO / "contracts"
BUILD_DIR = Path(__file__).resolve().parent / "build"  # package data: see artifact.py


def settings() -> dict[str, Any]:
    """The compiler settings recorded in, and checked against, every artifact."""
    return {
        "optimizer": {"enabled": True, "runs": OPTIMIZER_RUNS},
        "evmVersion": EVM_VERSION,
        # Metadata (and its hash at the end of the bytecode) names sources by these relative
        # unit names only, so the bytecode does not depend on where the checkout lives.
        "metadata": {"bytecodeHash": "ipfs"},
    }


def source_path(name: str) -> Path:
    return CONTRACTS_DIR / f"{name}.sol"


def source_unit(name: str) -> str:
    """The source unit name solc sees (and writes into the metadata)."""
    return f"contracts/{name}.sol"


def source_digest(source: bytes) -> str:
    """0x-prefixed SHA-256 of a source file's bytes."""
    return "0x" + hashlib.sha256(source).hexdigest()


def find_solcjs(configured: Path | None = None) -> Path | None:
    """solc-js: `configured` (default $FORGEPROOF_SOLCJS), else node_modules/.bin/solcjs;
    None when absent."""
    if configured is None:
        configured = LedgerSettings.read().solcjs
    candidate = configured or REPO / "node_modules" / ".bin" / "solcjs"
    return candidate if candidate.exists() else None


def compile_all(
    names: tuple[str, ...] = CONTRACTS, *, solc_binary: Path | None = None
) -> dict[str, dict[str, Any]]:
    """Compile the named contracts and return their artifacts by name.

    Raises:
        CompileError: solc-js is missing, is not version SOLC_VERSION, or reports an error.
    """
    # solcx is a development-time dependency: imported here so runtime never loads it.
    from solcx.wrapper import get_version_str_from_solc_binary

    binary = solc_binary or find_solcjs()
    if binary is None:
        raise CompileError("solc-js not found: run `npm install` or set FORGEPROOF_SOLCJS")
    try:
        version = get_version_str_from_solc_binary(binary).strip()
    except Exception as exc:  # solcx raises bare subprocess and parsing errors
        raise CompileError(f"cannot run {binary} --version: {exc}") from exc
    if not version.startswith(SOLC_VERSION + "+"):
        raise CompileError(f"{binary} is solc {version}, expected {SOLC_VERSION}")

    sources = {name: source_path(name).read_bytes() for name in names}
    # One compiler run per output: solc-js ends with process.exit(), which cuts stdout on a
    # pipe at 64 KiB when the reader is slower than the writer (seen with ProvenanceLedger's
    # ABI and both bytecodes in one answer). Each output alone stays well below that.
    outputs: dict[str, dict[str, Any]] = {}
    for selection in ("abi", "evm.bytecode.object", "evm.deployedBytecode.object"):
        output = _run_solcjs(binary, sources, selection)
        for name in names:
            built = outputs.setdefault(name, {"evm": {}})
            got = output["contracts"][source_unit(name)][name]
            if selection == "abi":
                built["abi"] = got["abi"]
            else:
                built["evm"].update(got["evm"])

    artifacts: dict[str, dict[str, Any]] = {}
    for name, source in sources.items():
        built = outputs[name]
        artifacts[name] = {
            "contractName": name,
            "sourcePath": source_unit(name),
            "sourceSha256": source_digest(source),
            "compiler": {"name": "solc-js", "version": version},
            "settings": settings(),
            "abi": built["abi"],
            "bytecode": "0x" + built["evm"]["bytecode"]["object"],
            "deployedBytecode": "0x" + built["evm"]["deployedBytecode"]["object"],
        }
    return artifacts


@contextmanager
def _stdin_from_file(binary: Path) -> Iterator[Path]:
    """`binary`, behind a wrapper that hands it its standard input as a file.

    solc-js reads standard input with readFileSync on fd 0, which node has made non-blocking:
    when the input is not in the pipe yet, the read fails with EAGAIN (it did under a loaded
    CI run). py-solc-x writes the input to a pipe; the wrapper reads the pipe to the end first.
    """
    with tempfile.TemporaryDirectory(prefix="forgeproof-solcjs-") as tmp:
        wrapper = Path(tmp) / "solcjs"
        real, kept = shlex.quote(str(binary)), shlex.quote(f"{tmp}/input.json")
        wrapper.write_text(
            "#!/bin/sh\n"  # only a --standard-json run reads its input (not --version)
            'case " $* " in *" --standard-json "*)\n'
            f'  cat > {kept}; exec {real} "$@" < {kept};;\n'
            "esac\n"
            f'exec {real} "$@"\n'
        )
        wrapper.chmod(0o755)
        yield wrapper


def _run_solcjs(binary: Path, sources: dict[str, bytes], selection: str) -> dict[str, Any]:
    """One standard-JSON compiler run asking for one output of every contract.

    Raises:
        CompileError: the compiler failed or reported an error.
    """
    import solcx

    standard_input = {
        "language": "Solidity",
        "sources": {source_unit(n): {"content": s.decode()} for n, s in sources.items()},
        "settings": {**settings(), "outputSelection": {"*": {"*": [selection]}}},
    }
    try:
        with _stdin_from_file(binary) as solcjs:
            output: dict[str, Any] = solcx.compile_standard(
                standard_input, solc_binary=solcjs, base_path=str(REPO)
            )
    except Exception as exc:  # SolcError carries the compiler's own message
        raise CompileError(f"solc-js failed: {exc}") from exc
    problems = [e["formattedMessage"] for e in output.get("errors", []) if e["severity"] == "error"]
    if problems:
        raise CompileError("solc-js rejected the source:\n" + "\n".join(problems))
    return output


def artifact_path(name: str, build_dir: Path = BUILD_DIR) -> Path:
    return build_dir / f"{name}.json"


def write_artifact(artifact: dict[str, Any], build_dir: Path = BUILD_DIR) -> Path:
    """Write an artifact atomically (a reader never sees half a file)."""
    build_dir.mkdir(parents=True, exist_ok=True)
    path = artifact_path(artifact["contractName"], build_dir)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(artifact, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def stale_reasons(name: str, build_dir: Path = BUILD_DIR) -> list[str]:
    """Why the committed artifact of `name` no longer matches its source and settings.

    Checks what needs no compiler: the source digest, the settings and the compiler version.
    An empty list means up to date.
    """
    path = artifact_path(name, build_dir)
    if not path.exists():
        return [f"{path} is missing"]
    artifact = json.loads(path.read_text())
    reasons = []
    digest = source_digest(source_path(name).read_bytes())
    if artifact.get("sourceSha256") != digest:
        reasons.append(f"source digest is {digest}, artifact has {artifact.get('sourceSha256')}")
    if artifact.get("settings") != settings():
        reasons.append(f"settings are {settings()}, artifact has {artifact.get('settings')}")
    version = artifact.get("compiler", {}).get("version", "")
    if not version.startswith(SOLC_VERSION + "+"):
        reasons.append(f"compiler {SOLC_VERSION} expected, artifact was built by {version!r}")
    return reasons


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ledger.chain.compile", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--check", action="store_true", help="compare with the committed artifacts, write nothing"
    )
    parser.add_argument("--build-dir", type=Path, default=BUILD_DIR)
    args = parser.parse_args(argv)

    if args.check:
        stale = {name: stale_reasons(name, args.build_dir) for name in CONTRACTS}
        artifacts = compile_all()
        for name, artifact in artifacts.items():
            path = artifact_path(name, args.build_dir)
            if path.exists() and json.loads(path.read_text()) != artifact:
                stale[name].append("recompiling gives a different artifact")
        bad = {n: r for n, r in stale.items() if r}
        for name, reasons in bad.items():
            print(f"{name}: stale: " + "; ".join(reasons), file=sys.stderr)
        if not bad:
            print("artifacts are up to date")
        return 1 if bad else 0
    for artifact in compile_all().values():
        path = write_artifact(artifact, args.build_dir)
        print(f"wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
