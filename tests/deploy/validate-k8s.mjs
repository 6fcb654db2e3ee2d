// validate-k8s.mjs - check deploy/k8s without a cluster.
//
//   node tests/deploy/validate-k8s.mjs --dir deploy/k8s [--dir DIR...] --help-text FILE [--metrics FILE]
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
// summary line per folder (with several --dir, each folder's report starts
// with "== DIR"); exit 0 when no folder has an error, 1 otherwise, 2 on bad
// usage.
import { readFileSync, readdirSync, statSync, existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import YAML from "yaml";

const here = path.dirname(fileURLToPath(import.meta.url));
const modelsDir = path.join(here, "node_modules", "kubernetes-models");

// ---------------------------------------------------------------- arguments
const args = {}, dirs = [];
for (let i = 2; i < process.argv.length; i += 2) {
  const k = process.argv[i], v = process.argv[i + 1];
  if (!k.startsWith("--") || v === undefined) usage(`bad argument ${k}`);
  if (k === "--dir") dirs.push(v); else args[k.slice(2)] = v;
}
function usage(msg) {
  console.error(`validate-k8s: ${msg}\nusage: node validate-k8s.mjs --dir DIR [--dir DIR...] --help-text FILE [--metrics FILE]`);
  process.exit(2);
}
if (!dirs.length || !args["help-text"]) usage("--dir and --help-text are required");

const errors = [];
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

// ------------------------------------------------------------------ main
// Several --dir: each is checked on its own (the test feeds many broken
// copies to one node process); exit 1 when any has an error.
let failed = 0;
for (const d of dirs) {
  errors.length = 0;
  const r = await checkDir(d);
  if (dirs.length > 1) console.log(`== ${d}`);
  for (const e of errors) console.log(e);
  console.log(`validate-k8s: ${d}: ${r.objects.length} objects in ${r.listed.length} files, ${errors.length} error${errors.length === 1 ? "" : "s"}`);
  if (errors.length) failed++;
}
process.exit(failed ? 1 : 0);

async function checkDir(dir) {
  // ------------------------------------------------------------------- files
  let kust;
  try {
    kust = YAML.parse(readFileSync(path.join(dir, "kustomization.yaml"), "utf8"));
  } catch (e) {
    err(`${dir}/kustomization.yaml`, `cannot read: ${e.message}`);
    return { objects: [], listed: [] };
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
    try {
      new Model(o).validate();
    } catch (e) {
      for (const part of String(e.message).split(", data")) err(where, `schema: ${part.startsWith("data") ? part : "data" + part}`);
    }
    if (!o.metadata?.name) err(where, "metadata.name is missing");
    // strict pass: which fields did the compiled schema read? (The schemas
    // are compiled with allErrors: every field is read even after an error.)
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

  // --------------------------------------------------------- cross-references
  const ns = (o) => o.metadata?.namespace ?? "default";
  const byKind = (k) => objects.filter((o) => o.kind === k);
  const find = (k, namespace, name) => objects.find((o) => o.kind === k && ns(o) === namespace && o.metadata?.name === name);
  const deployments = byKind("Deployment");
  const gatewayDeployments = new Set();
  const matches = (sel, labels) => !!sel && Object.keys(sel).length > 0 &&
    Object.entries(sel).every(([k, v]) => labels && labels[k] === v);
  // matchLabels only: matchExpressions would need an evaluator (none used here)
  function selectorLabels(where, sel) {
    if (!sel) { err(where, "no selector"); return null; }
    if (sel.matchExpressions) err(where, "matchExpressions are not checked by this validator: use matchLabels");
    return sel.matchLabels || {};
  }
  const podLabels = (d) => d.spec?.template?.metadata?.labels || {};
  const containersOf = (d) => [...(d.spec?.template?.spec?.containers || [])];
  const portOf = (d, ref) => {   // a container port by name or number
    for (const c of containersOf(d))
      for (const p of c.ports || [])
        if (ref === p.name || ref === p.containerPort) return { c, p };
    return null;
  };

  // the gateway: the Deployment whose container sets DRONEGATE_* variables or
  // runs the dronegate image; the checks that need the gateway's flags use it
  const gatewayContainer = (c) => /dronegate(:|@|$)/.test(c.image || "") ||
    (c.env || []).some((e) => String(e.name).startsWith("DRONEGATE_")) ||
    (c.envFrom || []).length > 0;

  for (const d of deployments) {
    const where = label(d);
    const sel = selectorLabels(`${where} spec.selector`, d.spec?.selector);
    if (sel && !matches(sel, podLabels(d)))
      err(where, `spec.selector ${JSON.stringify(sel)} does not match the pod template labels ${JSON.stringify(podLabels(d))}`);
    const pod = d.spec?.template?.spec || {};
    const volumes = new Map((pod.volumes || []).map((v) => [v.name, v]));
    for (const c of containersOf(d)) {
      const cw = `${where} container ${c.name}`;
      // probes: ports exist, the gateway's endpoints
      for (const kind of ["startupProbe", "livenessProbe", "readinessProbe"]) {
        const pr = c[kind];
        if (!pr) continue;
        const port = pr.httpGet?.port ?? pr.tcpSocket?.port ?? pr.grpc?.port;
        if (port !== undefined && !portOf({ spec: { template: { spec: { containers: [c] } } } }, port))
          err(cw, `${kind} port ${JSON.stringify(port)} is not a port of the container`);
      }
      for (const m of c.volumeMounts || [])
        if (!volumes.has(m.name)) err(cw, `volumeMount ${m.name} names no volume of the pod`);
      if (!c.resources?.requests?.cpu || !c.resources?.requests?.memory || !c.resources?.limits?.memory)
        err(cw, "resources: requests.cpu, requests.memory and limits.memory are required");
      if (!gatewayContainer(c)) continue;
      checkGateway(d, c, cw, pod, volumes);
    }
  }

  // the environment of a container: name -> {value?, from} (envFrom keys too)
  function environment(d, c, cw) {
    const env = new Map();
    const namespace = ns(d);
    for (const ef of c.envFrom || []) {
      const ref = ef.configMapRef || ef.secretRef;
      const kind = ef.configMapRef ? "ConfigMap" : "Secret";
      const o = ref && find(kind, namespace, ref.name);
      if (!o) { if (!ref?.optional) err(cw, `envFrom ${kind} ${ref?.name} does not exist in namespace ${namespace}`); continue; }
      for (const [k, v] of Object.entries(dataOf(o)))
        env.set((ef.prefix || "") + k, { value: v, from: `${kind}/${o.metadata.name}` });
    }
    for (const e of c.env || []) {
      const kr = e.valueFrom?.configMapKeyRef || e.valueFrom?.secretKeyRef;
      if (kr) {
        const kind = e.valueFrom.configMapKeyRef ? "ConfigMap" : "Secret";
        const o = find(kind, namespace, kr.name);
        if (!o) { if (!kr.optional) err(cw, `env ${e.name}: ${kind} ${kr.name} does not exist in namespace ${namespace}`); continue; }
        const data = dataOf(o);
        if (!(kr.key in data)) { if (!kr.optional) err(cw, `env ${e.name}: ${kind} ${kr.name} has no key ${kr.key}`); continue; }
        env.set(e.name, { value: data[kr.key], from: `${kind}/${kr.name}` });
      } else if (e.valueFrom?.fieldRef) {
        env.set(e.name, { value: undefined, from: `fieldRef ${e.valueFrom.fieldRef.fieldPath}` });
      } else {
        env.set(e.name, { value: e.value ?? "", from: "env" });
      }
    }
    return env;
  }
  function dataOf(o) {
    const out = { ...(o.data || {}) };
    for (const [k, v] of Object.entries(o.binaryData || {})) out[k] = v;
    if (o.kind === "Secret") {
      for (const [k, v] of Object.entries(o.data || {})) out[k] = Buffer.from(String(v), "base64").toString();
      Object.assign(out, o.stringData || {});
    }
    return out;
  }

  function checkGateway(d, c, cw, pod, volumes) {
    const env = environment(d, c, cw);
    for (const [name, e] of env) {
      if (!name.startsWith("DRONEGATE_")) continue;
      const v = gw.get(name);
      if (!v) { err(cw, `${name} (from ${e.from}) is not a variable the gateway knows (dronegate --help)`); continue; }
      if (v.unavailable) err(cw, `${name} (from ${e.from}): the gateway refuses --${v.flag} at start ("${v.help}")`);
    }
    const val = (name) => {
      const e = env.get(name);
      return e && e.value !== undefined ? String(e.value) : gw.get(name)?.def;
    };
    // drain: grace > preStop + shutdown timeout (+1 s for the store writer)
    const drainMs = Number(val("DRONEGATE_SHUTDOWN_TIMEOUT"));
    if (!Number.isFinite(drainMs)) err(cw, "cannot tell the drain timeout (DRONEGATE_SHUTDOWN_TIMEOUT)");
    const pre = c.lifecycle?.preStop;
    let preS = 0;
    if (!pre) err(cw, "no lifecycle.preStop: the pod must leave the Service endpoints before the drain starts");
    else if (pre.sleep) preS = Number(pre.sleep.seconds);
    else if (pre.exec?.command) {
      const m = /(?:^|\/)sleep$/.test(pre.exec.command[0]) ? Number(pre.exec.command[1]) : NaN;
      if (!Number.isFinite(m)) err(cw, `preStop ${JSON.stringify(pre.exec.command)}: expected [".../sleep", SECONDS]`);
      else preS = m;
    }
    const grace = pod.terminationGracePeriodSeconds ?? 30;
    const need = preS + drainMs / 1000 + 1;
    if (Number.isFinite(drainMs) && !(grace > need))
      err(cw, `terminationGracePeriodSeconds ${grace} must be above preStop ${preS} s + drain ${drainMs / 1000} s + 1 s (store writer) = ${need} s: the kubelet would SIGKILL a draining gateway`);
    // the gateway's health endpoints
    const path = (p) => p?.httpGet?.path;
    if (path(c.livenessProbe) !== "/healthz") err(cw, "livenessProbe must GET /healthz");
    if (path(c.readinessProbe) !== "/readyz") err(cw, "readinessProbe must GET /readyz (503 while draining or while the store fails)");
    const listen = val("DRONEGATE_LISTEN") || "0.0.0.0:8080";
    const lport = Number(listen.slice(listen.lastIndexOf(":") + 1));
    if (!(c.ports || []).some((p) => p.containerPort === lport))
      err(cw, `DRONEGATE_LISTEN ${listen}: port ${lport} is not a container port`);
    if (/^(127\.|localhost|\[::1\])/.test(listen)) err(cw, `DRONEGATE_LISTEN ${listen} is loopback: probes and Services cannot reach it`);
    // Service links: a Service named "dronegate" would put DRONEGATE_SERVICE_HOST,
    // DRONEGATE_PORT, DRONEGATE_PORT_8080_TCP... into the environment, the
    // gateway's own prefix (harmless today, a silent setting once a flag of
    // that name exists)
    const linked = byKind("Service").filter((s) => ns(s) === ns(d) &&
      String(s.metadata?.name).toUpperCase().replace(/-/g, "_").startsWith("DRONEGATE"));
    if (pod.enableServiceLinks !== false && linked.length)
      err(cw, `enableServiceLinks must be false: Service ${linked.map((s) => s.metadata.name).join(", ")} would inject ${linked[0].metadata.name.toUpperCase().replace(/-/g, "_")}_SERVICE_HOST, _PORT... (the DRONEGATE_ prefix) into the gateway's environment`);
    // security
    const sc = c.securityContext || {}, psc = pod.securityContext || {};
    if (!(sc.runAsNonRoot ?? psc.runAsNonRoot)) err(cw, "securityContext.runAsNonRoot must be true");
    if ((sc.runAsUser ?? psc.runAsUser) === 0) err(cw, "runAsUser 0");
    if (sc.readOnlyRootFilesystem !== true) err(cw, "securityContext.readOnlyRootFilesystem must be true");
    if (sc.allowPrivilegeEscalation !== false) err(cw, "securityContext.allowPrivilegeEscalation must be false");
    if (!(sc.capabilities?.drop || []).includes("ALL")) err(cw, "securityContext.capabilities.drop must hold ALL");
    // writable paths under a read-only root: the spool and a sqlite: store
    const writable = (c.volumeMounts || []).filter((m) => !m.readOnly && volumes.has(m.name)).map((m) => m.mountPath.replace(/\/+$/, ""));
    const under = (p) => p.startsWith("/") && writable.some((w) => p === w || p.startsWith(w + "/"));
    const store = val("DRONEGATE_STORE") || "";
    const spoolMb = Number(val("DRONEGATE_SPOOL_MAX_MB"));
    let spool = env.get("DRONEGATE_SPOOL_DIR")?.value;
    if (!spool) spool = store.startsWith("sqlite:") ? store.slice(7) + ".spool" : "./data/spool";
    if (spoolMb !== 0 && !under(spool))
      err(cw, `spool directory ${spool} (DRONEGATE_SPOOL_DIR) is not under a writable volume mount (${writable.join(", ") || "none"}); the root filesystem is read-only`);
    if (store.startsWith("sqlite:") && !under(store.slice(7)))
      err(cw, `SQLite store ${store.slice(7)} is not under a writable volume mount`);
    if (spoolMb > 0) {
      const vm = (c.volumeMounts || []).find((m) => under(spool) && (spool === m.mountPath || spool.startsWith(m.mountPath.replace(/\/+$/, "") + "/")));
      const limit = vm && volumes.get(vm.name)?.emptyDir?.sizeLimit;
      if (limit && quantityBytes(limit) < spoolMb * 1048576)
        err(cw, `volume ${vm.name} sizeLimit ${limit} is below DRONEGATE_SPOOL_MAX_MB ${spoolMb}: the kubelet would evict the pod before the spool is full`);
    }
    gatewayDeployments.add(d);
  }
  function quantityBytes(q) {
    const m = /^([0-9.]+)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(String(q));
    if (!m) return NaN;
    const mul = { Ki: 1024, Mi: 1048576, Gi: 1073741824, Ti: 1099511627776, k: 1e3, M: 1e6, G: 1e9, T: 1e12 }[m[2]] || 1;
    return Number(m[1]) * mul;
  }
  if (!gatewayDeployments.size) err(dir, "no gateway Deployment (a container with DRONEGATE_* variables)");

  // Services: the selector picks pods of a Deployment, target ports exist
  for (const s of byKind("Service")) {
    const where = label(s);
    const sel = s.spec?.selector;
    if (!sel || !Object.keys(sel).length) { err(where, "no selector (an Endpoints object would be needed)"); continue; }
    const ds = deployments.filter((d) => ns(d) === ns(s) && matches(sel, podLabels(d)));
    if (!ds.length) { err(where, `selector ${JSON.stringify(sel)} selects no pods of any Deployment in namespace ${ns(s)}`); continue; }
    for (const p of s.spec.ports || []) {
      const t = p.targetPort ?? p.port;
      for (const d of ds) {
        const hit = portOf(d, t);
        if (!hit) err(where, `port ${p.name ?? p.port}: targetPort ${JSON.stringify(t)} is not a container port of Deployment/${d.metadata.name}`);
        else if ((hit.p.protocol || "TCP") !== (p.protocol || "TCP"))
          err(where, `port ${p.name ?? p.port}: protocol ${p.protocol || "TCP"} but the container port is ${hit.p.protocol || "TCP"}`);
      }
    }
  }

  // PodDisruptionBudgets: select the gateway pods, leave room for an eviction
  const hpas = byKind("HorizontalPodAutoscaler");
  for (const b of byKind("PodDisruptionBudget")) {
    const where = label(b);
    const sel = selectorLabels(where, b.spec?.selector);
    const ds = deployments.filter((d) => ns(d) === ns(b) && sel && matches(sel, podLabels(d)));
    if (!ds.length) { err(where, `selector ${JSON.stringify(sel)} selects no pods of any Deployment in namespace ${ns(b)}`); continue; }
    for (const d of ds) {
      const h = hpas.find((h) => ns(h) === ns(d) && h.spec?.scaleTargetRef?.name === d.metadata.name);
      const minPods = h ? (h.spec.minReplicas ?? 1) : (d.spec.replicas ?? 1);
      if (typeof b.spec.minAvailable === "number" && b.spec.minAvailable >= minPods)
        err(where, `minAvailable ${b.spec.minAvailable} >= ${minPods} replicas of Deployment/${d.metadata.name}: no pod could ever be evicted (node drains block)`);
      if (b.spec.maxUnavailable === 0) err(where, "maxUnavailable 0: no pod could ever be evicted");
    }
  }

  // prometheus-adapter rules: the metric names they serve to the custom metrics API
  const adapterMetrics = new Map();   // served name -> {series metric, where}
  for (const cm of byKind("ConfigMap")) {
    const cfg = cm.data?.["config.yaml"];
    if (!cfg || !/^\s*(rules|externalRules|resourceRules)\s*:/m.test(cfg)) continue;
    const where = label(cm);
    let conf;
    try { conf = YAML.parse(cfg); } catch (e) { err(where, `config.yaml: ${e.message}`); continue; }
    for (const [i, r] of (conf.rules || []).entries()) {
      const rw = `${where} rules[${i}]`;
      const sm = /^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{/.exec(r.seriesQuery || "");
      if (!sm) { err(rw, `seriesQuery ${JSON.stringify(r.seriesQuery)}: expected metric{labels}`); continue; }
      const series = sm[1];
      if (!r.metricsQuery || !r.metricsQuery.includes("<<.Series>>") || !r.metricsQuery.includes("<<.LabelMatchers>>") || !r.metricsQuery.includes("<<.GroupBy>>"))
        err(rw, "metricsQuery must use <<.Series>>, <<.LabelMatchers>> and <<.GroupBy>>");
      const ov = r.resources?.overrides || {};
      const res = Object.values(ov).map((x) => x.resource);
      if (!(res.includes("pod") && res.includes("namespace")) && !r.resources?.template)
        err(rw, "resources must map labels to pod and namespace (a Pods metric is looked up per pod)");
      let served = series;
      if (r.name?.matches) {
        const re = new RegExp(r.name.matches);
        if (!re.test(series)) err(rw, `name.matches ${r.name.matches} does not match ${series}`);
        served = r.name.as ? series.replace(re, r.name.as.replace(/\$\{?(\d)\}?/g, "$$$1")) : series;
      }
      adapterMetrics.set(served, { series, where: rw, rule: r });
      if (metricsText !== null) {
        if (!new RegExp(`^${series}(\\{|\\s)`, "m").test(metricsText))
          err(rw, `${series} is not on the gateway's /metrics page`);
        for (const lm of (r.metricsQuery || "").matchAll(/([a-z_]+)=~"([^"]*)"/g)) {
          for (const value of lm[2].split("|")) {
            if (!new RegExp(`^${series}\\{[^}]*${lm[1]}="${value}"`, "m").test(metricsText))
              err(rw, `metricsQuery filters ${lm[1]}="${value}" but the gateway's /metrics has no ${series} series with it`);
          }
        }
      }
    }
  }

  // HPAs: the target exists, CPU needs requests, Pods metrics are served
  for (const h of hpas) {
    const where = label(h);
    const t = h.spec?.scaleTargetRef || {};
    const d = t.kind === "Deployment" && find("Deployment", ns(h), t.name);
    if (!d) { err(where, `scaleTargetRef ${t.kind}/${t.name} is not a Deployment in namespace ${ns(h)}`); continue; }
    if (t.apiVersion !== "apps/v1") err(where, `scaleTargetRef.apiVersion ${t.apiVersion} is not apps/v1`);
    if ((h.spec.minReplicas ?? 1) > h.spec.maxReplicas) err(where, "minReplicas above maxReplicas");
    const kinds = new Set((h.spec.metrics || []).map((m) => m.type));
    if (!kinds.has("Resource") || !kinds.has("Pods")) err(where, "metrics: expected a Resource (cpu) and a Pods (connections) metric");
    for (const m of h.spec.metrics || []) {
      if (m.type === "Resource" && m.resource?.target?.type === "Utilization") {
        for (const c of containersOf(d))
          if (!c.resources?.requests?.[m.resource.name])
            err(where, `${m.resource.name} Utilization needs resources.requests.${m.resource.name} on container ${c.name}`);
      }
      if (m.type === "Pods") {
        const name = m.pods?.metric?.name;
        if (!adapterMetrics.has(name)) err(where, `Pods metric ${name} is served by no prometheus-adapter rule in this folder`);
        if (m.pods?.target?.type !== "AverageValue") err(where, `Pods metric ${name}: target.type must be AverageValue`);
      }
    }
  }

  return { objects, listed };
}
