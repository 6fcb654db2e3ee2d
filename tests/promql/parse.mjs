// parse.mjs - syntax-check PromQL expressions with Prometheus' lezer grammar.
//
//   node tests/promql/parse.mjs < exprs.json
//
// stdin: a JSON array of {"where": "...", "expr": "..."}; stdout: a JSON array
// of {"where", "ok", "error"} in the same order (exit 0 either way; exit 2 on
// bad input). An expression is rejected when the parse tree holds an error
// node (lezer recovers from errors instead of throwing) or when its top node
// is not a PromQL expression.
import { readFileSync } from "node:fs";
import { parser } from "@prometheus-io/lezer-promql";

function check(expr) {
    if (typeof expr !== "string" || expr.trim() === "")
        return "empty expression";
    const tree = parser.parse(expr);
    let err = null;
    tree.iterate({
        enter(n) {
            if (err) return false;
            if (n.type.isError) {
                const near = expr.slice(Math.max(0, n.from - 15), n.to + 15);
                err = `syntax error at offset ${n.from}: ...${near}...`;
                return false;
            }
        },
    });
    if (err) return err;
    const top = tree.topNode;
    if (top.name !== "PromQL" || !top.firstChild)
        return `not a PromQL expression (top node ${top.name})`;
    return null;
}

let items;
try {
    items = JSON.parse(readFileSync(0, "utf8"));
    if (!Array.isArray(items)) throw new Error("stdin is not a JSON array");
} catch (e) {
    console.error(`parse.mjs: ${e.message}`);
    process.exit(2);
}
const out = items.map(({ where, expr }) => {
    const error = check(expr);
    return { where, ok: error === null, error };
});
process.stdout.write(JSON.stringify(out) + "\n");
