// Generates openapi-types.d.mts (the response type of every operation) from petbox's
// OpenAPI document, a file or a running server's:
//   node scripts/gen-types.mjs http://127.0.0.1:8080/openapi.json openapi-types.d.mts
//
// Fails (exit 1, nothing written) when an operation's success response has no schema,
// or one that says nothing of the body (an object without properties): a client must
// never be typed `Record<string, never>` or `unknown` for what petbox answers.
import { readFileSync, writeFileSync } from "node:fs";

const [docPath, outPath] = process.argv.slice(2);
if (!docPath || !outPath) {
  console.error("usage: node scripts/gen-types.mjs OPENAPI.json OUT.d.mts");
  process.exit(2);
}
const doc = /^https?:/.test(docPath)
  ? await (await fetch(docPath)).json()  // a running server's /openapi.json
  : JSON.parse(readFileSync(docPath, "utf8"));

const pascal = (id) => id[0].toUpperCase() + id.slice(1);
const key = (name) => (/^[A-Za-z_$][\w$]*$/.test(name) ? name : JSON.stringify(name));

/** The TypeScript type of a JSON Schema (the subset petbox's document uses). */
function tsType(schema, indent = "") {
  if (schema === true || !schema || Object.keys(schema).length === 0) return "unknown";
  if (schema.$ref) return schema.$ref.replace(/^#\/components\/schemas\//, "");
  if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(" | ");
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  const alts = schema.anyOf || schema.oneOf;
  if (alts) return alts.map((s) => tsType(s, indent)).join(" | ");
  if (Array.isArray(schema.type)) {
    return schema.type.map((t) => tsType({ ...schema, type: t }, indent)).join(" | ");
  }
  switch (schema.type) {
    case "string": return "string";
    case "integer": case "number": return "number";
    case "boolean": return "boolean";
    case "null": return "null";
    case "array": return `Array<${tsType(schema.items, indent)}>`;
    case "object": case undefined: return objectType(schema, indent);
    default: return "unknown";
  }
}

function objectType(schema, indent) {
  const props = schema.properties || {};
  const names = Object.keys(props);
  const extra = schema.additionalProperties;
  if (names.length === 0) {
    if (extra && typeof extra === "object") return `{ [key: string]: ${tsType(extra, indent)} }`;
    return "Record<string, unknown>";
  }
  const required = new Set(schema.required || []);
  const inner = `${indent}  `;
  const lines = names.map((n) => {
    const doc = props[n].description ? `${inner}/** ${props[n].description} */\n` : "";
    return `${doc}${inner}${key(n)}${required.has(n) ? "" : "?"}: ${tsType(props[n], inner)};`;
  });
  return `{\n${lines.join("\n")}\n${indent}}`;
}

/** Says nothing of the body: no schema, or an object with no properties at all. */
function bare(schema) {
  if (!schema) return true;
  if (schema.$ref || schema.anyOf || schema.oneOf) return false;
  if (schema.type === "string" || schema.type === "array") return false;
  return !schema.properties && !(schema.additionalProperties
    && typeof schema.additionalProperties === "object");
}

const problems = [];
const ops = [];
for (const [path, methods] of Object.entries(doc.paths)) {
  for (const [method, op] of Object.entries(methods)) {
    const success = Object.keys(op.responses || {}).filter((s) => /^2\d\d$/.test(s)).sort()[0];
    const content = success && op.responses[success].content;
    const schema = content && Object.values(content)[0]?.schema;
    if (!success || bare(schema)) {
      problems.push(`${op.operationId} (${method.toUpperCase()} ${path}): success response `
        + `${success || "(none)"} has no response schema`);
      continue;
    }
    ops.push({ id: op.operationId, status: success, schema, summary: op.summary || "" });
  }
}
if (problems.length) {
  console.error(`openapi-types: ${problems.length} operation(s) without a response schema:`);
  for (const p of problems) console.error(`  ${p}`);
  process.exit(1);
}

const out = [
  "// Generated from petbox's /openapi.json by scripts/gen-types.mjs: do not edit.",
  "",
];
for (const [name, schema] of Object.entries(doc.components?.schemas || {})) {
  out.push(`export type ${name} = ${tsType(schema)};`, "");
}
ops.sort((a, b) => a.id.localeCompare(b.id));
for (const op of ops) {
  out.push(`/** ${op.id} ${op.status}: ${op.summary.replace(/\*\//g, "* /")} */`);
  out.push(`export type ${pascal(op.id)}Response = ${tsType(op.schema)};`, "");
}
out.push("/** Each operation's success body, by operationId. */");
out.push("export interface Responses {");
for (const op of ops) out.push(`  ${key(op.id)}: ${pascal(op.id)}Response;`);
out.push("}", "");
writeFileSync(outPath, out.join("\n"));
