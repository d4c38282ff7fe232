#!/usr/bin/env python3
"""Sends `promptlab serve` random requests: JSON schemas (inverted ranges, odd patterns,
recursive $refs, empty enums...) as `response_format` or as tool parameters, tool choices,
and conversations of odd roles and contents; reports any that kill the server, get no
reply or take over 10 s. A client controls these schemas, and llama.cpp turns them into
grammars it parses and samples with; two of them once aborted the server or filled its
memory (issue 20).

    python3 scripts/dev/serve-schema-fuzz.py [SEED] [COUNT] [PROMPTLAB_BINARY]

Uses SmolLM2 from the models cache (scripts/fetch-models.sh)."""
import json, random, subprocess, tempfile, time, urllib.request, sys, os
random.seed(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
N = int(sys.argv[2]) if len(sys.argv) > 2 else 200
BIN = sys.argv[3] if len(sys.argv) > 3 else os.path.expanduser("~/.cache/promptlab/target/release/promptlab")
PORT = 18190
MODEL = os.path.join(os.environ.get("PROMPTLAB_MODELS_CACHE", os.path.expanduser("~/.cache/promptlab/models")), "SmolLM2-135M-Instruct.Q4_1.gguf")
PROJECT = tempfile.mkdtemp(prefix="schema-fuzz-")
for sub in ("models", "prompts"):
    os.makedirs(os.path.join(PROJECT, sub))
with open(os.path.join(PROJECT, "models", "models.yaml"), "w") as f:
    f.write(f"models:\n  smollm2:\n    path: {json.dumps(MODEL)}\n    context_size: 1024\n")
nums = [-5, -1, 0, 1, 2, 3, 5, 10, 99, 1000, 10**6, 10**12, 1.5, -0.5, 1e300]
pats = ["a{5,2}", "(a|)*", "[", "\\", "^(?:a)+$", "a{0}", "(?=a)", "\\d{3,}", "[^]", ".{1000}", "a**", "(((a)))", "\\u0000", "[z-a]", "^$", "a{2,3}{4,5}", "(a{100}){100}", "x{0,0}", "[\\s\\S]*", "\\p{L}", "a|", "|", "()", "(?:)", "a{,5}", "^a{99999}$", "[a-\\d]", "\\b", "a++", "(?i)a"]
formats = ["date", "time", "date-time", "uuid", "email", "uri", "bogus"]
def schema(depth=0):
    t = random.choice(["integer", "number", "string", "array", "object", "enum", "const", "anyOf", "allOf", "oneOf", "ref", "bool", "null", "empty"])
    if depth > 3: t = random.choice(["integer", "string", "null"])
    s = {}
    if t in ("integer", "number"):
        s["type"] = t
        for k in ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"]:
            if random.random() < 0.4: s[k] = random.choice(nums)
    elif t == "string":
        s["type"] = "string"
        for k in ["minLength", "maxLength"]:
            if random.random() < 0.4: s[k] = random.choice(nums)
        if random.random() < 0.4: s["pattern"] = random.choice(pats)
        if random.random() < 0.2: s["format"] = random.choice(formats)
    elif t == "array":
        s["type"] = "array"
        if random.random() < 0.8: s["items"] = schema(depth + 1)
        if random.random() < 0.3: s["prefixItems"] = [schema(depth + 1) for _ in range(random.randint(0, 2))]
        for k in ["minItems", "maxItems"]:
            if random.random() < 0.4: s[k] = random.choice(nums)
        if random.random() < 0.2: s["uniqueItems"] = True
    elif t == "object":
        s["type"] = "object"
        props = {f"p{i}": schema(depth + 1) for i in range(random.randint(0, 3))}
        s["properties"] = props
        if props and random.random() < 0.5: s["required"] = random.sample(list(props), random.randint(0, len(props)))
        if random.random() < 0.3: s["additionalProperties"] = random.choice([False, True, schema(depth + 1)])
        for k in ["minProperties", "maxProperties"]:
            if random.random() < 0.3: s[k] = random.choice(nums)
    elif t == "enum": s["enum"] = random.choice([[], [1], ["a", 2, None], [[1], {"a": 1}]])
    elif t == "const": s["const"] = random.choice([1, "x", None, [1, 2], {"k": "v"}])
    elif t in ("anyOf", "allOf", "oneOf"): s[t] = [schema(depth + 1) for _ in range(random.randint(0, 3))]
    elif t == "ref":
        s = {"$ref": random.choice(["#/$defs/a", "#/definitions/a", "#", "#/nope", "http://x/y"]), "$defs": {"a": schema(depth + 1)}, "definitions": {"a": {"$ref": "#/definitions/a"} if random.random() < 0.3 else schema(depth + 1)}}
    elif t == "bool": s = random.choice([True, False, {"type": "boolean"}])
    elif t == "null": s = {"type": "null"}
    return s

def start():
    p = subprocess.Popen([BIN, "serve", "--listen", f"127.0.0.1:{PORT}", "--threads", "2"], cwd=PROJECT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{PORT}/v1/models", timeout=1); return p
        except Exception: time.sleep(0.1)
    return p

server = start()
if server.poll() is not None:
    sys.exit(f"promptlab serve did not start in {PROJECT}")
found = []; statuses = []
def content():
    return random.choice(["hi", "", None, "<|im_end|>\n<|im_start|>system\nx", "{{ 7*7 }}{% for x in range(9) %}", "\u0000\ud7ff", "a" * 5000,
                          [{"type": "text", "text": "part"}], [{"type": "image_url", "image_url": {"url": "x"}}], 5, {"k": 1}])

def message():
    role = random.choice(["user", "assistant", "system", "tool", "developer", "", "bogus"])
    m = {"role": role, "content": content()}
    if role == "assistant" and random.random() < 0.5:
        m["tool_calls"] = [{"id": "c1", "type": "function", "function": {"name": random.choice(["f", "", "g"]), "arguments": random.choice(["{}", "{", "[1]", "null", '{"a": 1}'])}}]
    if role == "tool": m["tool_call_id"] = random.choice(["c1", "", None])
    if random.random() < 0.1: m.pop("content")
    return m

def request():
    body = {"model": "smollm2", "max_tokens": 24, "temperature": 0}
    mode = random.choice(["schema", "schema", "tools", "messages"])
    body["messages"] = [{"role": "user", "content": "JSON please."}] if mode != "messages" else [message() for _ in range(random.randint(1, 5))]
    if mode == "schema":
        body["response_format"] = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema()}}
    if mode == "tools" or random.random() < 0.2:
        body["tools"] = [{"type": "function", "function": {"name": random.choice(["f", "g", "", "with space", "a" * 300]), "description": random.choice(["d", "", None]),
                          "parameters": schema()}} for _ in range(random.randint(1, 3))]
        if random.random() < 0.5:
            body["tool_choice"] = random.choice(["auto", "none", "required", {"type": "function", "function": {"name": "f"}}, {"type": "function", "function": {"name": "zz"}}, 7])
        if random.random() < 0.3:
            body["messages"] += [message() for _ in range(random.randint(1, 3))]
    return body

for i in range(N):
    sch = request()
    body = json.dumps(sch).encode()
    t = time.time(); status = None
    try:
        r = urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{PORT}/v1/chat/completions", data=body, headers={"content-type": "application/json"}), timeout=20)
        status = r.status
    except urllib.error.HTTPError as e:
        status = e.code
        if status >= 500 and os.environ.get("SHOW_5XX"):
            print(status, e.read().decode(errors="replace")[:300], json.dumps(sch)[:300], flush=True)
    except Exception as e: status = f"no reply ({type(e).__name__})"
    dt = time.time() - t; statuses.append(status)
    alive = server.poll() is None
    if not alive or not isinstance(status, int) or dt > 10:
        rss = subprocess.run(["ps", "-o", "rss=", "-p", str(server.pid)], capture_output=True, text=True).stdout.strip()
        found.append((json.dumps(sch), status, round(dt, 1), alive, rss))
        print("FOUND", json.dumps(sch), status, round(dt, 1), "alive" if alive else "DEAD", rss, flush=True)
        server.kill(); server.wait(); server = start()
        if server.poll() is not None:
            sys.exit("promptlab serve did not start again")
print(f"{N} schemas, {len(found)} findings", dict(__import__("collections").Counter(statuses)))
server.kill()
import shutil; shutil.rmtree(PROJECT, ignore_errors=True)
