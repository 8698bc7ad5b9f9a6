// Validates documents with ajv (a JSON Schema implementation the service does not use).
// argv: the schema file, "draft7" or "2020"; stdin: a JSON array of documents.
// Writes one JSON line per document: {valid, errors}.
import { readFileSync } from "node:fs";
import Ajv7 from "ajv";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";

const [schemaPath, dialect] = process.argv.slice(2);
const Ajv = dialect === "2020" ? Ajv2020 : Ajv7;
const ajv = new Ajv({ allErrors: true, strict: false });
addFormats(ajv);
const validate = ajv.compile(JSON.parse(readFileSync(schemaPath, "utf8")));
for (const doc of JSON.parse(readFileSync(0, "utf8"))) {
  const valid = validate(doc);
  console.log(JSON.stringify({ valid, errors: valid ? [] : validate.errors.slice(0, 3) }));
}
