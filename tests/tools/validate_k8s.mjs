// Validates Kubernetes objects against the API's OpenAPI schema, offline, with the
// schema the npm package kubernetes-models ships (pinned in tests/package.json; its
// schema is the one of the Kubernetes release it was generated from).
//
// Usage: node validate_k8s.mjs < objects.json, a JSON array of {file, object}.
// Prints one line per problem ("FILE: Kind/name: /path: message") and exits 1 when
// there is any, else prints "N objects valid" and exits 0.
import { readFileSync } from "node:fs";

const documents = JSON.parse(readFileSync(0, "utf8"));
const problems = [];

for (const { file, object } of documents) {
    const where = `${file}: ${object?.kind ?? "?"}/${object?.metadata?.name ?? "?"}`;
    if (!object?.apiVersion || !object?.kind) {
        problems.push(`${where}: no apiVersion or kind`);
        continue;
    }
    // "apps/v1" -> kubernetes-models/apps/v1/Deployment, "v1" -> kubernetes-models/v1/Pod
    let model;
    try {
        model = (await import(`kubernetes-models/${object.apiVersion}/${object.kind}`))[object.kind];
    } catch {
        problems.push(`${where}: ${object.apiVersion} ${object.kind} is not a Kubernetes API kind`);
        continue;
    }
    try {
        new model(object).validate();
    } catch (e) {
        for (const err of e.errors ?? [e])
            problems.push(`${where}: ${err.instancePath || "/"}: ${err.message}${
                err.params ? " " + JSON.stringify(err.params) : ""}`);
    }
}

for (const p of problems)
    console.log(p);
if (problems.length)
    process.exit(1);
console.log(`${documents.length} objects valid`);
