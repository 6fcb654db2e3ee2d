// validate-k8s.mjs - check deploy/k8s without a cluster.
//
//   node tests/deploy/validate-k8s.mjs --dir deploy/k8s --help-text FILE [--metrics FILE]
//
// --help-text: the output of `dronegate --help` (the DRONEGATE_* variables the
// gateway knows, their defaults, and which flags this build refuses);
// --metrics: a /metrics page of a running gateway (the metric the
// prometheus-adapter rule reads must be there).
//
// 1. Files: kustomization.yaml lists every file of the folder, and every
//    listed file exists.
// 2. Schema: each object is built with its kubernetes-models class and
//    checked with validate() (types, required fields, enums, formats). The
//    models' schemas accept unknown fields (the API server would prune or
//    refuse them), so a second pass runs the same compiled schema on a Proxy
//    of the object and reports every field the schema never looked at.
// 3. Cross-references a schema cannot see: Service / PDB / Deployment
//    selectors against the pod labels, Service targetPorts and probe ports
//    against container ports, the HPA target and metrics, the
//    prometheus-adapter rule, ConfigMap / Secret references, DRONEGATE_*
//    names and values against `dronegate --help`, the grace period against
//    drain + preStop, writable paths under a read-only root.
//
// Output: one line per finding, "ERROR <file> <Kind>/<name>: <what>", then a
// summary; exit 0 when there is no error, 1 otherwise, 2 on bad usage.
import { readFileSync, readdirSync, statSync, existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import YAML from "yaml";

const here = path.dirname(fileURLToPath(import.meta.url));
const modelsDir = path.join(here, "node_modules", "kubernetes-models");

// ---------------------------------------------------------------- arguments
const args = {};
for (let i = 2; i < process.argv.length; i += 2) {
  const k = process.argv[i], v = process.argv[i + 1];
  if (!k.startsWith("--") || v === undefined) usage(`bad argument ${k}`);
  args[k.slice(2)] = v;
}
function usage(msg) {
  console.error(`validate-k8s: ${msg}\nusage: node validate-k8s.mjs --dir DIR --help-text FILE [--metrics FILE]`);
  process.exit(2);
}
if (!args.dir || !args["help-text"]) usage("--dir and --help-text are required");

const errors = [];
const notes = [];
function err(where, msg) { errors.push(`ERROR ${where}: ${msg}`); }
function label(o) { return `${o.__file} ${o.kind}/${o.metadata?.name ?? "?"}`; }

// ------------------------------------------------------ what the gateway knows
// `dronegate --help` lines: "  --flag  VALUE\n   [DRONEGATE_FLAG]\n      help text"
const gw = parseHelp(readFileSync(args["help-text"], "utf8"));
function parseHelp(text) {
  const vars = new Map();     // DRONEGATE_X -> {flag, help, def, unavailable}
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const m = /^\s+\[(DRONEGATE_[A-Z0-9_]+)\]\s*$/.exec(lines[i]);
    if (!m) continue;
    const flag = (/^\s+--([a-z0-9-]+)/.exec(lines[i - 1] || "") || [])[1];
    const help = (lines[i + 1] || "").trim();
    const d = /\(default:? ([^)]*)\)\s*$/.exec(help) || /\(default ([^)]*)\)/.exec(help);
    vars.set(m[1], { flag, help, def: d ? d[1] : undefined, unavailable: /not available in this build/.test(help) });
  }
  if (vars.size < 10) usage(`${args["help-text"]} does not look like \`dronegate --help\` (${vars.size} variables)`);
  return vars;
}
const metricsText = args.metrics ? readFileSync(args.metrics, "utf8") : null;

// ------------------------------------------------------------------- files
const dir = args.dir;
let kust;
try {
  kust = YAML.parse(readFileSync(path.join(dir, "kustomization.yaml"), "utf8"));
} catch (e) {
  err(`${dir}/kustomization.yaml`, `cannot read: ${e.message}`);
  finish();
}
checkKustomization(kust);
function checkKustomization(k) {
  const where = "kustomization.yaml";
  if (!k || typeof k !== "object") return err(where, "not a YAML mapping");
  if (k.apiVersion !== "kustomize.config.k8s.io/v1beta1") err(where, `apiVersion ${k.apiVersion} is not kustomize.config.k8s.io/v1beta1`);
  if (k.kind !== "Kustomization") err(where, `kind ${k.kind} is not Kustomization`);
  // the fields of a Kustomization this folder may use (kustomize's own
  // schema is not in kubernetes-models); anything else is a typo
  const known = new Set(["apiVersion", "kind", "resources", "namespace", "labels", "commonLabels",
    "commonAnnotations", "images", "configMapGenerator", "secretGenerator", "generatorOptions",
    "patches", "replicas", "namePrefix", "nameSuffix", "components"]);
  for (const key of Object.keys(k)) if (!known.has(key)) err(where, `unknown field ${key}`);
  if (!Array.isArray(k.resources) || !k.resources.length) err(where, "resources: must list the manifests");
}
const listed = (kust && Array.isArray(kust.resources)) ? kust.resources : [];
const seen = new Set();
for (const r of listed) {
  if (typeof r !== "string") { err("kustomization.yaml", `resources entry ${JSON.stringify(r)} is not a file name`); continue; }
  if (seen.has(r)) err("kustomization.yaml", `${r} is listed twice`);
  seen.add(r);
  if (!existsSync(path.join(dir, r))) err("kustomization.yaml", `${r} is listed but does not exist`);
}
for (const f of readdirSync(dir).sort()) {
  if (f === "kustomization.yaml") continue;
  if (statSync(path.join(dir, f)).isDirectory()) { err(f, "a folder in deploy/k8s (not validated; list it or move it)"); continue; }
  if (!seen.has(f)) err(f, "is in the folder but not listed in kustomization.yaml resources (kubectl apply -k would skip it)");
}

// ------------------------------------------------------------ load objects
const objects = [];
for (const f of listed) {
  if (typeof f !== "string" || !existsSync(path.join(dir, f))) continue;
  let docs;
  try {
    docs = YAML.parseAllDocuments(readFileSync(path.join(dir, f), "utf8"));
  } catch (e) { err(f, `YAML: ${e.message}`); continue; }
  for (const d of docs) {
    if (d.errors.length) { err(f, `YAML: ${d.errors.map(e => e.message).join("; ")}`); continue; }
    const o = d.toJS();
    if (o === null || o === undefined) continue;          // empty document
    if (typeof o !== "object" || Array.isArray(o)) { err(f, "a document is not a mapping"); continue; }
    Object.defineProperty(o, "__file", { value: f, enumerable: false });
    objects.push(o);
  }
}

// ------------------------------------------------------------------ schema
for (const o of objects) await validateSchema(o);

async function validateSchema(o) {
  const where = label(o);
  if (typeof o.apiVersion !== "string" || typeof o.kind !== "string" || !/^[A-Za-z0-9]+$/.test(o.kind))
    return err(where, "apiVersion and kind must be strings");
  const file = path.join(modelsDir, ...o.apiVersion.split("/"), `${o.kind}.js`);
  if (!/^[a-z0-9.]*\/?v[0-9a-z]+$/.test(o.apiVersion) || !existsSync(file))
    return err(where, `unknown apiVersion/kind ${o.apiVersion} ${o.kind} (not in kubernetes-models)`);
  const mod = await import(pathToFileURL(file).href);
  const Model = mod[o.kind];
  let schemaOk = true;
  try {
    new Model(o).validate();
  } catch (e) {
    schemaOk = false;
    for (const part of String(e.message).split(", data")) err(where, `schema: ${part.startsWith("data") ? part : "data" + part}`);
  }
  if (!o.metadata?.name) err(where, "metadata.name is missing");
  // the schemas are compiled with allErrors: every field is read even after an error
  // strict pass: which fields did the compiled schema read?
  const src = readFileSync(file, "utf8");
  const sm = /from\s*"((?:\.\.\/)+_schemas\/[A-Za-z0-9]+\.js)"/.exec(src);
  if (!sm) return err(where, `cannot find the schema of ${o.kind} in kubernetes-models (strict check not run)`);
  const { validate } = await import(pathToFileURL(path.resolve(path.dirname(file), sm[1])).href);
  const read = new WeakMap(), proxies = new WeakMap();
  const wrap = (v) => {
    if (v === null || typeof v !== "object") return v;
    if (proxies.has(v)) return proxies.get(v);
    const keys = new Set();
    read.set(v, keys);
    const p = new Proxy(v, {
      get(t, k, r) {
        if (typeof k === "string") keys.add(k);
        return wrap(Reflect.get(t, k, r));
      },
    });
    proxies.set(v, p);
    return p;
  };
  validate(wrap(o));
  reportUnread(o, read, where, "");
}

// A field the schema never read is unknown to it. An object none of whose
// fields was read is free-form for the schema (nothing to compare with).
function reportUnread(v, read, where, p) {
  if (v === null || typeof v !== "object") return;
  if (Array.isArray(v)) return v.forEach((x, i) => reportUnread(x, read, where, `${p}/${i}`));
  const keys = read.get(v);
  if (!keys || keys.size === 0) return;
  for (const k of Object.keys(v)) {
    if (!keys.has(k)) err(where, `unknown field ${p}/${k} (not in the Kubernetes schema of ${where.split(" ")[1].split("/")[0]})`);
    else reportUnread(v[k], read, where, `${p}/${k}`);
  }
}

finish();

function finish() {
  for (const n of notes) console.log(n);
  for (const e of errors) console.log(e);
  console.log(`validate-k8s: ${objects?.length ?? 0} objects in ${listed?.length ?? 0} files, ${errors.length} error${errors.length === 1 ? "" : "s"}`);
  process.exit(errors.length ? 1 : 0);
}
