// Compares two runs of the MCP conformance suite, for scripts/conformance:
// one against the bare service, one against the example server behind its
// layer stack, both through tests/conformance/proxy.mjs.
//
//   node compare.mjs checks PASS BARE_DIR STACK_DIR EXPECTED_FILE SUMMARY_FILE
//   node compare.mjs exchanges BARE_LOG STACK_LOG [BARE_FROM STACK_FROM]
//   node compare.mjs floor PASS SUMMARY_FILE FLOOR_FILE
//
// `checks` reads the suite's results (`-o DIR`: one `server-<scenario>-<time>/
// checks.json` per scenario) and pairs the checks by scenario, check id and
// occurrence (a scenario may emit one id several times). A REGRESSION is a
// check that passes bare (SUCCESS) and not behind the stack (any other
// status, or missing).
// It prints each regression (the check, both results), marks those listed
// in EXPECTED_FILE ("PASS SCENARIO CHECK" lines, # comments) as expected,
// lists expectations that no longer hold, and writes the counts as JSON to
// SUMMARY_FILE. Exit status: 0 when every regression is expected, every
// expectation still holds and every scenario run bare has a result behind
// the stack; 1 otherwise (or when the bare run has no result at all). The
// names of the regressing
// scenarios go to stdout, one a line, after a line "REGRESSED:".
//
// `exchanges` reads the proxies' logs (JSON lines, from line BARE_FROM /
// STACK_FROM on, counted from 0) and prints every request whose two answers
// differ: the request, then the bare and the stack answer. Requests are
// paired by method, path, Mcp-Method, Mcp-Name and body without its
// JSON-RPC id (the suite draws ids from the clock); answers differ when
// their HTTP status, JSON-RPC error code or result-versus-error differ.
// Exit status 3 when none does (0 otherwise), so a replay can say so.
//
// `floor` checks that the bare run of PASS (SUMMARY_FILE, written by
// `checks`) passed at least the checks FLOOR_FILE records for it ("PASS
// CHECKS" lines, # comments): with an upstream nobody here wrote, a broken
// install or a changed version would otherwise pass as "0 regressions".
// Exit status 1 when it passed fewer, or FLOOR_FILE has no line for PASS;
// more is reported, so the file can be raised.

import fs from "node:fs";
import path from "node:path";

const PRINT_LIMIT = 1200;
// At most this many differing requests are printed (a broken stack can
// answer every request differently).
const EXCHANGE_LIMIT = 30;

function clip(text, limit = PRINT_LIMIT) {
  const s = typeof text === "string" ? text : JSON.stringify(text);
  if (s === undefined) return "";
  return s.length > limit ? s.slice(0, limit) + "…" : s;
}

// scenario -> [{ key, check }], key = "scenario check-id #occurrence".
function loadChecks(dir) {
  const scenarios = new Map();
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    const m = /^server-(.+)-\d{4}-\d\d-\d\dT[\d-]+Z$/.exec(entry.name);
    if (!m) continue;
    const file = path.join(dir, entry.name, "checks.json");
    if (!fs.existsSync(file)) continue;
    const checks = JSON.parse(fs.readFileSync(file, "utf8"));
    const seen = new Map();
    const list = [];
    for (const check of checks) {
      const n = seen.get(check.id) ?? 0;
      seen.set(check.id, n + 1);
      list.push({ key: `${m[1]} ${check.id} #${n}`, check });
    }
    scenarios.set(m[1], list);
  }
  return scenarios;
}

// The suite's own verdict: a scenario passes when none of its checks fails.
const scenarioPasses = (list) => list.every(({ check }) => check.status !== "FAILURE");
const checkPasses = (check) => check?.status === "SUCCESS";

function loadExpected(file, pass) {
  const expected = new Set();
  if (!file || !fs.existsSync(file)) return expected;
  for (const raw of fs.readFileSync(file, "utf8").split("\n")) {
    const line = raw.replace(/#.*/, "").trim();
    if (!line) continue;
    const [p, scenario, check] = line.split(/\s+/);
    if (p === pass && scenario && check) expected.add(`${scenario} ${check}`);
  }
  return expected;
}

function describe(check) {
  if (!check) return "(no such check in this run)";
  let s = check.status;
  if (check.errorMessage) s += `: ${check.errorMessage}`;
  if (check.details !== undefined) s += `\n      details: ${clip(check.details, 600)}`;
  return s;
}

function compareChecks([pass, bareDir, stackDir, expectedFile, summaryFile]) {
  const bare = loadChecks(bareDir);
  const stack = loadChecks(stackDir);
  const expected = loadExpected(expectedFile, pass);
  const out = [];
  const regressions = [];
  const improvements = [];
  const regressed = new Set();
  const missingScenarios = [...bare.keys()].filter((s) => !stack.has(s));

  for (const [scenario, list] of bare) {
    const stackByKey = new Map((stack.get(scenario) ?? []).map((c) => [c.key, c.check]));
    for (const { key, check } of list) {
      const other = stackByKey.get(key);
      if (checkPasses(check) && !checkPasses(other)) {
        regressions.push({ scenario, key, bare: check, stack: other });
      } else if (!checkPasses(check) && checkPasses(other)) {
        improvements.push(key);
      }
    }
  }

  const unexpected = [];
  const seenExpected = new Set();
  for (const r of regressions) {
    const id = `${r.scenario} ${r.bare.id}`;
    const isExpected = expected.has(id);
    if (isExpected) seenExpected.add(id);
    else unexpected.push(r);
    regressed.add(r.scenario);
    out.push(
      `  ${isExpected ? "EXPECTED" : "REGRESSION"} [${pass}] ${r.key}: ${r.bare.description ?? r.bare.name ?? ""}\n` +
        `    bare:  ${describe(r.bare)}\n    stack: ${describe(r.stack)}`,
    );
  }
  const stale = [...expected].filter((id) => !seenExpected.has(id));
  for (const id of stale) {
    out.push(`  STALE EXPECTATION [${pass}] ${id}: passes behind the stack now; delete its line from ${expectedFile}`);
  }
  for (const scenario of missingScenarios) {
    out.push(`  MISSING [${pass}] scenario ${scenario} has no result behind the stack`);
  }
  for (const key of improvements) {
    out.push(`  note [${pass}] ${key}: fails bare, passes behind the stack`);
  }

  const count = (runs, pred) => [...runs.values()].filter(pred).length;
  const checksPassing = (runs) => [...runs.values()].flat().filter(({ check }) => checkPasses(check)).length;
  const summary = {
    pass,
    scenarios: bare.size,
    scenariosBare: count(bare, scenarioPasses),
    scenariosStack: count(stack, scenarioPasses),
    checksBare: checksPassing(bare),
    checksStack: checksPassing(stack),
    regressions: regressions.length,
    expected: regressions.length - unexpected.length,
  };
  fs.writeFileSync(summaryFile, JSON.stringify(summary) + "\n");
  if (out.length) process.stderr.write(out.join("\n") + "\n");
  process.stdout.write(["REGRESSED:", ...regressed].join("\n") + "\n");
  const ok = bare.size > 0 && unexpected.length === 0 && stale.length === 0 && missingScenarios.length === 0;
  process.exit(ok ? 0 : 1);
}

function readLog(file, from) {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, "utf8")
    .split("\n")
    .filter(Boolean)
    .slice(from)
    .map((line) => JSON.parse(line));
}

function requestKey({ request }) {
  let body = request.body;
  try {
    const json = JSON.parse(body);
    if (json && typeof json === "object" && !Array.isArray(json)) delete json.id;
    body = JSON.stringify(json);
  } catch {
    // Not JSON (or cut): compared as sent.
  }
  const h = request.headers;
  return [request.method, request.path, h["mcp-method"] ?? "", h["mcp-name"] ?? "", body].join("\u0000");
}

// What a client acts on: the status, and the JSON-RPC error code or the
// fact of a result (in a JSON body or an SSE event alike). Null when the
// client closed the stream before either came (the suite does so on
// purpose, to resume it; whether a result raced in first is timing).
function outcome({ answer }) {
  if (answer.status === null) return answer.error === "client closed" ? null : `no answer (${answer.error})`;
  const body = answer.body ?? "";
  const code = /"error"\s*:\s*\{\s*"code"\s*:\s*(-?\d+)/.exec(body);
  const kind = code ? `error ${code[1]}` : /"result"\s*:/.test(body) ? "result" : "";
  if (!kind && answer.error === "client closed") return null;
  return `${answer.status} ${kind}`.trim();
}

function printAnswer(label, entry) {
  const a = entry.answer;
  return `    ${label} ${outcome(entry)}  ${a.contentType ?? ""}\n      ${clip(a.body)}`;
}

function compareExchanges([bareLog, stackLog, bareFrom = "0", stackFrom = "0"]) {
  const bare = readLog(bareLog, Number(bareFrom));
  const stack = readLog(stackLog, Number(stackFrom));
  const pending = new Map();
  for (const entry of stack) {
    const k = requestKey(entry);
    if (!pending.has(k)) pending.set(k, []);
    pending.get(k).push(entry);
  }
  let differing = 0;
  for (const entry of bare) {
    const other = pending.get(requestKey(entry))?.shift();
    if (!other) continue;
    const [mine, theirs] = [outcome(entry), outcome(other)];
    if (mine === null || theirs === null || mine === theirs) continue;
    differing += 1;
    if (differing > EXCHANGE_LIMIT) continue;
    const r = entry.request;
    const headers = Object.entries(r.headers)
      .filter(([name]) => name.startsWith("mcp-") && name !== "mcp-session-id")
      .map(([name, value]) => `${name}: ${value}`)
      .join(", ");
    process.stdout.write(
      `    request: ${r.method} ${r.path}${headers ? `  (${headers})` : ""}\n      ${clip(r.body)}\n` +
        `${printAnswer("bare: ", entry)}\n${printAnswer("stack:", other)}\n`,
    );
  }
  if (differing > EXCHANGE_LIMIT) {
    process.stdout.write(`    … and ${differing - EXCHANGE_LIMIT} more\n`);
  }
  process.stdout.write(`    (${differing} of ${bare.length} requests answered differently)\n`);
  return differing;
}

function checkFloor([pass, summaryFile, floorFile]) {
  const summary = JSON.parse(fs.readFileSync(summaryFile, "utf8"));
  let floor = null;
  for (const raw of fs.readFileSync(floorFile, "utf8").split("\n")) {
    const [p, n] = raw.replace(/#.*/, "").trim().split(/\s+/);
    if (p === pass && /^\d+$/.test(n ?? "")) floor = Number(n);
  }
  if (floor === null) {
    process.stderr.write(`  FLOOR [${pass}]: ${floorFile} records no count for this pass\n`);
    process.exit(1);
  }
  if (summary.checksBare < floor) {
    process.stderr.write(
      `  FLOOR [${pass}]: the bare server passed ${summary.checksBare} checks, ${floorFile} records ${floor}: ` +
        "a broken install or a changed upstream version (see the bare suite log)\n",
    );
    process.exit(1);
  }
  if (summary.checksBare > floor) {
    process.stderr.write(`  note [${pass}]: the bare server passed ${summary.checksBare} checks, more than the ${floor} ${floorFile} records: raise it\n`);
  }
}

const [command, ...args] = process.argv.slice(2);
if (command === "checks" && args.length === 5) compareChecks(args);
else if (command === "floor" && args.length === 3) checkFloor(args);
else if (command === "exchanges" && (args.length === 2 || args.length === 4)) process.exitCode = compareExchanges(args) ? 0 : 3;
else {
  process.stderr.write("usage: node compare.mjs checks PASS BARE_DIR STACK_DIR EXPECTED_FILE SUMMARY_FILE\n" +
    "       node compare.mjs exchanges BARE_LOG STACK_LOG [BARE_FROM STACK_FROM]\n" +
    "       node compare.mjs floor PASS SUMMARY_FILE FLOOR_FILE\n");
  process.exit(2);
}
