// Validates asyncapi.yaml with the AsyncAPI project's parser (schema, references,
// semantic rules) and checks it agrees with events/catalog.json: every event type
// has a channel whose address is its topic and whose message payload references
// the current version of its JSON Schema. Exits non-zero on any error.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Parser, fromFile } from "@asyncapi/parser";

const here = dirname(fileURLToPath(import.meta.url));
const documentPath = join(here, "asyncapi.yaml");
const catalog = JSON.parse(readFileSync(join(here, "events", "catalog.json"), "utf8")).event_types;

const ERROR = 0;
const parser = new Parser();
const { document, diagnostics } = await fromFile(parser, documentPath).parse();
const errors = diagnostics.filter((d) => d.severity === ERROR);
for (const d of diagnostics) {
  const where = d.path && d.path.length ? d.path.join(".") : "(document)";
  console.log(`${d.severity === ERROR ? "error" : "note"}: ${where}: ${d.message}`);
}
if (!document || errors.length) {
  console.error(`asyncapi.yaml: ${errors.length} error(s)`);
  process.exit(1);
}

const problems = [];
const channelsByMessage = new Map();
for (const channel of document.channels()) {
  for (const message of channel.messages()) {
    channelsByMessage.set(message.name(), channel.address());
  }
}
for (const [eventType, entry] of Object.entries(catalog)) {
  const address = channelsByMessage.get(eventType);
  if (address === undefined) {
    problems.push(`${eventType}: no channel carries it`);
  } else if (address !== entry.topic) {
    problems.push(`${eventType}: channel address ${address}, catalog topic ${entry.topic}`);
  }
  const sends = document
    .operations()
    .filterBySend()
    .filter((op) => op.messages().all().some((m) => m.name() === eventType));
  if (sends.length !== 1) problems.push(`${eventType}: ${sends.length} producers, expected exactly 1`);
}
const raw = readFileSync(documentPath, "utf8");
for (const [eventType, entry] of Object.entries(catalog)) {
  if (!raw.includes(`./events/${eventType}/${entry.version}.json`)) {
    problems.push(`${eventType}: payload does not reference events/${eventType}/${entry.version}.json`);
  }
}
for (const message of document.allMessages()) {
  if (!(message.name() in catalog)) problems.push(`${message.name()}: message not in events/catalog.json`);
}
if (problems.length) {
  for (const p of problems) console.error(`error: ${p}`);
  process.exit(1);
}
console.log(
  `asyncapi.yaml: valid AsyncAPI ${document.version()}, ${document.channels().length} channels, ` +
    `${document.operations().length} operations, agrees with events/catalog.json`,
);
