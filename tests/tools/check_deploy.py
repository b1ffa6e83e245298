#!/usr/bin/env python3
"""check_deploy.py: checks the deployment files under deploy/ against the repository.

    check_deploy.py sam TEMPLATE --root ROOT [--layers "ZIP ZIP"]
    check_deploy.py rendered RENDERED --template TEMPLATE --root ROOT
    check_deploy.py terraform INSPECT_JSON --root ROOT --inspect HCL_INSPECT [--layers "ZIP ZIP"]
    check_deploy.py publish DRY_RUN_OUTPUT --root ROOT --layer-dir DIR

--layers: the zips `make layer` writes, relative to ROOT (the Makefile's $(LAYERS); the default
is what it says today), each named stash-<architecture>.zip.

Each prints one line per problem and exits 1 if there is any, 0 otherwise.

- sam: the SAM template parsed by PyYAML with CloudFormation's short-form tags (!Ref, !Sub, ...;
  an unknown tag is an error). Every Ref/GetAtt/Sub/Condition names something the template
  declares; every CodeUri/ContentUri and the dashboard file exist (the layer zips are the two
  `make layer` writes, checked by name because a test run does not build them); both
  architectures are published with deploy/compatible-runtimes.txt; the example function's role
  allows exactly the actions below, each on named resources only.
- rendered: deploy/sam/render.py's output carries the dashboard file's JSON unchanged but for
  its Region, and the same CodeUri/ContentUri files.
- terraform: tests/tools/hcl_inspect's JSON (HashiCorp's HCL parser) checked the same way:
  every reference resolves to a declared block, every file() names an existing file, every
  local module exists and gets only inputs it declares. (SAM's nested stacks likewise.)
- publish: deploy/publish.sh --dry-run's commands publish both zips with the right flags.
"""
import argparse
import json
import os
import re
import shlex
import subprocess
import sys

import yaml

# What the example function may do. Secrets Manager, SSM and KMS as AWS's documentation of its
# Parameters and Secrets Lambda Extension lists them, plus BatchGetSecretValue (API reference:
# it needs GetSecretValue on each secret too), plus writing to its own log group.
ALLOWED_ACTIONS = {
    "secretsmanager:GetSecretValue",
    "secretsmanager:BatchGetSecretValue",
    "ssm:GetParameter",
    "ssm:GetParameters",
    "kms:Decrypt",
    "logs:CreateLogStream",
    "logs:PutLogEvents",
}
# The one action whose Resource must be "*" (it has no resource type in the IAM reference).
STAR_ACTION = "secretsmanager:BatchGetSecretValue"
# What `make layer` writes, by architecture (--layers replaces it).
LAYER_ZIPS = {"build/layer/stash-x86_64.zip": "x86_64", "build/layer/stash-arm64.zip": "arm64"}
ARCHS = {"x86_64", "arm64"}


def set_layers(text):
    LAYER_ZIPS.clear()
    for path in text.split():
        m = re.fullmatch(r"(?:.*/)?stash-(x86_64|arm64)\.zip", path)
        if not m:
            bad(f"--layers: {path} is not named stash-<architecture>.zip")
            continue
        LAYER_ZIPS[os.path.normpath(path)] = m.group(1)
DASHBOARD = "dashboards/stash-dashboard.json"
RUNTIMES_FILE = "deploy/compatible-runtimes.txt"
PSEUDO = {"AWS::AccountId", "AWS::NotificationARNs", "AWS::NoValue", "AWS::Partition",
          "AWS::Region", "AWS::StackId", "AWS::StackName", "AWS::URLSuffix"}

problems = []


def bad(msg):
    problems.append(msg)


def finish():
    for p in problems:
        print(p)
    sys.exit(1 if problems else 0)


def runtimes(root):
    with open(os.path.join(root, RUNTIMES_FILE), encoding="utf-8") as f:
        names = [line.strip() for line in f if line.strip()]
    # PublishLayerVersion's CompatibleRuntimes: at most 15 items (Lambda API reference).
    if not 1 <= len(names) <= 15 or len(set(names)) != len(names):
        bad(f"{RUNTIMES_FILE}: {len(names)} runtimes; Lambda takes 1 to 15, each once")
    return names


def rel(root, path):
    return os.path.relpath(os.path.normpath(path), root)


def check_local_file(root, path, what):
    """A file a template names: a layer zip of `make layer` (returns its arch) or a repo file."""
    r = rel(root, path)
    if r in LAYER_ZIPS:
        return LAYER_ZIPS[r]
    if r.startswith("build" + os.sep):
        bad(f"{what}: {r} is under build/ but is not a file `make layer` writes")
    elif r.startswith(".." + os.sep):
        bad(f"{what}: {r} is outside the repository")
    elif not os.path.exists(path):
        bad(f"{what}: {r} does not exist")
    return None


# --- CloudFormation YAML ---------------------------------------------------------------------

class CfnLoader(yaml.SafeLoader):
    """SafeLoader plus CloudFormation's short forms, each turned into its long form."""


def _node(loader, node):
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_mapping(node, deep=True)


def _add(tag, long_name):
    CfnLoader.add_constructor("!" + tag, lambda ld, n: {long_name: _node(ld, n)})


def _getatt(loader, node):
    v = _node(loader, node)
    if isinstance(v, str):
        v = v.split(".", 1)
    return {"Fn::GetAtt": v}


_add("Ref", "Ref")
_add("Condition", "Condition")
for _fn in ("Sub", "If", "Not", "Equals", "And", "Or", "Select", "Join", "Split", "FindInMap",
            "Base64", "Cidr", "GetAZs", "ImportValue", "Transform", "ToJsonString", "Length"):
    _add(_fn, "Fn::" + _fn)
CfnLoader.add_constructor("!GetAtt", _getatt)


def load_cfn(path):
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=CfnLoader)  # noqa: S506 (CfnLoader is a SafeLoader)


SUB_VAR = re.compile(r"\$\{([^}!][^}]*)\}")


def walk_refs(node, where, out):
    """Collects (kind, name, where) for every Ref, GetAtt, Sub variable and Fn::If condition."""
    if isinstance(node, dict):
        if len(node) == 1:
            (k, v), = node.items()
            if k == "Ref":
                out.append(("ref", v, where))
            elif k == "Fn::GetAtt":
                out.append(("getatt", v[0], where))
            elif k == "Fn::If":
                out.append(("condition", v[0], where))
            elif k == "Condition" and isinstance(v, str):
                out.append(("condition", v, where))
            elif k == "Fn::Sub":
                text, local = (v, {}) if isinstance(v, str) else (v[0], v[1])
                for name in SUB_VAR.findall(text):
                    if name in local:
                        continue
                    if "." in name and not name.startswith("AWS::"):
                        out.append(("getatt", name.split(".", 1)[0], where))
                    else:
                        out.append(("ref", name, where))
        for k, v in node.items():
            walk_refs(v, f"{where}.{k}", out)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            walk_refs(v, f"{where}[{i}]", out)


def if_branches(node):
    """Every value a node can take through Fn::If (AWS::NoValue dropped)."""
    if isinstance(node, dict) and list(node) == ["Fn::If"]:
        return if_branches(node["Fn::If"][1]) + if_branches(node["Fn::If"][2])
    if node == {"Ref": "AWS::NoValue"}:
        return []
    return [node]


def as_list(v):
    return v if isinstance(v, list) else [v]


def check_statements(statements, names, where):
    """IAM statements: exactly the allowed actions, each on named resources only."""
    seen = set()
    for st in statements:
        sid = st.get("Sid", "?")
        if st.get("Effect") != "Allow":
            bad(f"{where} {sid}: Effect must be Allow")
        if "NotAction" in st or "NotResource" in st:
            bad(f"{where} {sid}: NotAction/NotResource grant more than they name")
        actions = as_list(st.get("Action", []))
        seen.update(actions)
        for a in actions:
            if a not in ALLOWED_ACTIONS:
                bad(f"{where} {sid}: action {a} is not one of {sorted(ALLOWED_ACTIONS)}")
        resources = as_list(st.get("Resource", []))
        if STAR_ACTION in actions:
            if actions != [STAR_ACTION] or resources != ["*"]:
                bad(f"{where} {sid}: {STAR_ACTION} must stand alone, on Resource \"*\"")
            continue
        for r in resources:
            refs = []
            walk_refs(r, where, refs)
            named = [n for _, n, _ in refs if n in names]
            if isinstance(r, str) or not named:
                bad(f"{where} {sid}: Resource {r!r} must name a template parameter or resource")
    if seen != ALLOWED_ACTIONS:
        bad(f"{where}: actions are {sorted(seen)}, expected exactly {sorted(ALLOWED_ACTIONS)}")


def check_nested_stack(name, props, base, root):
    """A nested stack from a repository file: it exists, parses, and gets exactly parameters it
    declares, every one it requires."""
    url = props.get("TemplateURL")
    if not isinstance(url, str) or url.startswith(("s3://", "https://")):
        bad(f"SAM {name}: TemplateURL must be a repository file")
        return
    path = os.path.join(base, url)
    check_local_file(root, path, f"SAM {name}.TemplateURL")
    if not os.path.exists(path):
        return
    declared = load_cfn(path).get("Parameters") or {}
    given = props.get("Parameters") or {}
    for p in given:
        if p not in declared:
            bad(f"SAM {name}: parameter {p} is not one {rel(root, path)} declares")
    for p, d in declared.items():
        if "Default" not in d and p not in given:
            bad(f"SAM {name}: {rel(root, path)} requires parameter {p}")


def eval_cfn(node, params, conds):
    """The value of a condition-level expression with the given parameter values."""
    if isinstance(node, dict) and len(node) == 1:
        (k, v), = node.items()
        if k == "Ref":
            return params[v] if v in params else node  # a resource: itself
        if k == "Condition":
            return eval_cfn(conds[v], params, conds)
        if k == "Fn::Equals":
            return eval_cfn(v[0], params, conds) == eval_cfn(v[1], params, conds)
        if k == "Fn::Not":
            return not eval_cfn(v[0], params, conds)
        if k == "Fn::And":
            return all(eval_cfn(x, params, conds) for x in v)
        if k == "Fn::Or":
            return any(eval_cfn(x, params, conds) for x in v)
        if k == "Fn::If":
            return eval_cfn(v[1] if eval_cfn(conds[v[0]], params, conds) else v[2], params, conds)
    return node


def check_layer_per_arch(name, props, params, conds, layers):
    """For each architecture the function can be deployed with, the layer it gets is built for
    that architecture (a wrong one cannot even start)."""
    arch = (props.get("Architectures") or [None])[0]
    if not (isinstance(arch, dict) and arch.get("Ref") in params):
        bad(f"SAM {name}: Architectures must be [!Ref <a parameter>]")
        return
    pname = arch["Ref"]
    allowed = params[pname].get("AllowedValues") or []
    if set(allowed) != ARCHS:
        bad(f"SAM {name}: parameter {pname} must allow exactly {sorted(ARCHS)}")
    for a in sorted(ARCHS):
        try:
            got = [eval_cfn(layer, {pname: a}, conds) for layer in props.get("Layers") or []]
        except (KeyError, IndexError, TypeError) as e:
            bad(f"SAM {name}: cannot work out its layers for {pname}={a}: {e!r}")
            continue
        archs = [layers.get(g.get("Ref"), (None,))[0] if isinstance(g, dict) else None
                 for g in got]
        if archs != [a]:
            bad(f"SAM {name}: with {pname}={a} it gets layers built for {archs}")


def check_sam(path, root):
    t = load_cfn(path)
    base = os.path.dirname(os.path.abspath(path))
    if "AWS::Serverless-2016-10-31" not in as_list(t.get("Transform", [])):
        bad("SAM: Transform AWS::Serverless-2016-10-31 is missing")
    params = t.get("Parameters") or {}
    res = t.get("Resources") or {}
    conds = t.get("Conditions") or {}
    names = set(params) | set(res)

    refs = []
    for section in ("Conditions", "Resources", "Outputs"):
        walk_refs(t.get(section) or {}, section, refs)
    for kind, name, where in refs:
        if kind == "ref" and name not in names and name not in PSEUDO:
            bad(f"SAM {where}: Ref {name} is neither a parameter, a resource nor a pseudo parameter")
        elif kind == "getatt" and name not in res:
            bad(f"SAM {where}: GetAtt {name} is not a resource of the template")
        elif kind == "condition" and name not in conds:
            bad(f"SAM {where}: condition {name} is not declared")

    want_runtimes = runtimes(root)
    layers = {}
    for name, r in res.items():
        props = r.get("Properties") or {}
        typ = r.get("Type")
        for key in ("CodeUri", "ContentUri"):
            uri = props.get(key)
            if isinstance(uri, str) and not uri.startswith("s3://"):
                arch = check_local_file(root, os.path.join(base, uri), f"SAM {name}.{key}")
                if typ == "AWS::Serverless::LayerVersion":
                    layers[name] = (arch, props)
        if typ == "AWS::CloudFormation::Stack":
            check_nested_stack(name, props, base, root)
        if typ == "AWS::Serverless::LayerVersion" and name not in layers:
            bad(f"SAM {name}: a layer without a local ContentUri")
        if typ == "AWS::CloudWatch::Dashboard":
            body = props.get("DashboardBody")
            m = re.fullmatch(r"render\.py:(.+)", body) if isinstance(body, str) else None
            if not m:
                bad(f"SAM {name}: DashboardBody must be 'render.py:<file>' (render.py inserts "
                    "the file, so no copy of the dashboard can drift)")
            else:
                f = os.path.join(base, m.group(1))
                if rel(root, f) != DASHBOARD:
                    bad(f"SAM {name}: the dashboard is {rel(root, f)}, expected {DASHBOARD}")
                check_local_file(root, f, f"SAM {name}.DashboardBody")
    if not any(r.get("Type") == "AWS::CloudWatch::Dashboard" for r in res.values()):
        bad("SAM: no AWS::CloudWatch::Dashboard")

    archs = set()
    for name, (arch, props) in layers.items():
        ca = props.get("CompatibleArchitectures")
        if arch is None or ca != [arch]:
            bad(f"SAM {name}: CompatibleArchitectures {ca} does not match its zip ({arch})")
        archs.add(arch)
        if props.get("CompatibleRuntimes") != want_runtimes:
            bad(f"SAM {name}: CompatibleRuntimes differ from {RUNTIMES_FILE}")
    if archs != ARCHS or len(layers) != 2:
        bad(f"SAM: layers publish {sorted(a or '?' for a in archs)}, expected one per "
            f"architecture of {sorted(ARCHS)}")

    functions = {n: r for n, r in res.items() if r.get("Type") == "AWS::Serverless::Function"}
    if not functions:
        bad("SAM: no example function")
    for name, r in functions.items():
        props = r.get("Properties") or {}
        if "Policies" in props:
            bad(f"SAM {name}: Policies would add SAM's own statements; use the template's Role")
        role = props.get("Role")
        role_name = role.get("Fn::GetAtt", [None])[0] if isinstance(role, dict) else None
        if role_name not in res or res[role_name].get("Type") != "AWS::IAM::Role":
            bad(f"SAM {name}: Role must be !GetAtt <an AWS::IAM::Role of the template>.Arn")
        check_layer_per_arch(name, props, params, conds, layers)
        attached = set()
        for layer in props.get("Layers") or []:
            for v in if_branches(layer):
                if isinstance(v, dict) and v.get("Ref") in layers:
                    attached.add(v["Ref"])
                else:
                    bad(f"SAM {name}: layer {v!r} is not one of the template's layers")
        if attached != set(layers):
            bad(f"SAM {name}: attaches {sorted(attached)}, expected each architecture's layer")
        code = props.get("CodeUri")
        handler = props.get("Handler", "")
        if isinstance(code, str) and "." in handler:
            module = os.path.join(base, code, handler.rsplit(".", 1)[0])
            if not any(os.path.exists(module + ext) for ext in (".mjs", ".js", ".cjs")):
                bad(f"SAM {name}: Handler {handler}: no {rel(root, module)}.mjs/.js/.cjs")

    roles = {n: r for n, r in res.items() if r.get("Type") == "AWS::IAM::Role"}
    for name, r in res.items():
        if r.get("Type") in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            bad(f"SAM {name}: a separate policy resource; keep the role's policy in the role")
    for name, r in roles.items():
        props = r.get("Properties") or {}
        if props.get("ManagedPolicyArns"):
            bad(f"SAM {name}: ManagedPolicyArns grant actions this check cannot see")
        statements = []
        for pol in props.get("Policies") or []:
            for st in as_list(pol["PolicyDocument"]["Statement"]):
                statements.extend(if_branches(st))
        check_statements(statements, names, f"SAM {name}")


def check_rendered(path, template, root):
    src = load_cfn(template)
    out = load_cfn(path)
    base = os.path.dirname(os.path.abspath(template))
    with open(os.path.join(root, DASHBOARD), encoding="utf-8") as f:
        want = json.load(f)
    found = 0
    for name, r in src["Resources"].items():
        props = r.get("Properties") or {}
        got = out["Resources"][name].get("Properties") or {}
        if r.get("Type") == "AWS::CloudWatch::Dashboard":
            body = got.get("DashboardBody")
            if not (isinstance(body, dict) and isinstance(body.get("Fn::Sub"), str)):
                bad(f"rendered {name}: DashboardBody is not a !Sub string")
                continue
            text = body["Fn::Sub"].replace("${AWS::Region}", "us-east-1")
            if json.loads(text) != want:
                bad(f"rendered {name}: DashboardBody differs from {DASHBOARD}")
            found += 1
        for key in ("CodeUri", "ContentUri", "TemplateURL"):
            if isinstance(props.get(key), str):
                if got.get(key) != os.path.normpath(os.path.join(base, props[key])):
                    bad(f"rendered {name}.{key}: {got.get(key)} is not the template's file")
        paths = ("DashboardBody", "CodeUri", "ContentUri", "TemplateURL")
        if {k: v for k, v in props.items() if k not in paths} \
                != {k: v for k, v in got.items() if k not in paths}:
            bad(f"rendered {name}: properties other than the body and paths changed")
    if found != 1:
        bad(f"rendered: {found} dashboards, expected 1")


# --- Terraform ---------------------------------------------------------------------------------

BUILTIN_ROOTS = {"path", "terraform", "count", "each", "self"}
FILE_FUNCS = {"file", "filebase64", "filebase64sha256", "filesha256", "filemd5", "templatefile"}


def tf_walk(blocks, fn, dynamic=()):
    for b in blocks:
        iters = dynamic
        if b["type"] == "dynamic":
            iters = dynamic + (b["labels"][0],)
        fn(b, iters)
        tf_walk(b["blocks"], fn, iters)


def tf_statements(doc):
    out = []
    for b in doc["blocks"]:
        if b["type"] == "statement":
            out.append(b)
        elif b["type"] == "dynamic" and b["labels"] == ["statement"]:
            out.extend(c for c in b["blocks"] if c["type"] == "content")
    return out


MODULE_META = {"source", "version", "providers", "count", "for_each", "depends_on"}


def check_module(b, tf_dir, root, inspect_bin):
    """A module from a repository folder: it parses, and gets exactly inputs it declares as
    variables, every one without a default."""
    where = f"Terraform module {b['labels'][0]}"
    src = (b["attrs"].get("source") or {}).get("value")
    if not isinstance(src, str) or not src.startswith(("./", "../")):
        bad(f"{where}: source must be a repository folder")
        return
    path = os.path.join(tf_dir, src)
    check_local_file(root, path, f"{where}.source")
    tfs = sorted(os.path.join(path, f) for f in os.listdir(path) if f.endswith(".tf")) \
        if os.path.isdir(path) else []
    if not tfs:
        bad(f"{where}: {rel(root, path)} holds no .tf file")
        return
    out = subprocess.run([inspect_bin] + tfs, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        bad(f"{where}: {out.stderr.strip()}")
        return
    variables = {v["labels"][0]: v for f in json.loads(out.stdout) for v in f["blocks"]
                 if v["type"] == "variable"}
    given = set(b["attrs"]) - MODULE_META
    for g in sorted(given - set(variables)):
        bad(f"{where}: input {g} is not a variable of {rel(root, path)}")
    for v, blk in variables.items():
        if "default" not in blk["attrs"] and v not in given:
            bad(f"{where}: {rel(root, path)} requires input {v}")


def check_terraform(inspect, root, inspect_bin):
    with open(inspect, encoding="utf-8") as f:
        files = json.load(f)
    top = [b for f in files for b in f["blocks"]]
    for f in files:
        for b in f["blocks"]:
            if b["type"] == "module":
                check_module(b, os.path.dirname(f["file"]), root, inspect_bin)
    resources = {(b["labels"][0], b["labels"][1]): b for b in top if b["type"] == "resource"}
    data = {(b["labels"][0], b["labels"][1]): b for b in top if b["type"] == "data"}
    variables = {b["labels"][0] for b in top if b["type"] == "variable"}
    locals_ = {}
    for b in top:
        if b["type"] == "locals":
            locals_.update(b["attrs"])
    modules = {b["labels"][0] for b in top if b["type"] == "module"}

    def check_block(b, iters):
        where = f"Terraform {b['type']} {'.'.join(b['labels'])}".rstrip()
        for aname, a in b["attrs"].items():
            if b["type"] == "variable" and aname == "type":
                continue  # a type constraint (string, list(string)...), not a reference
            w = f"{where}.{aname} (line {a['line']})"
            for ref in a["refs"]:
                root_name = ref[0]
                if root_name == "var":
                    ok = len(ref) > 1 and ref[1] in variables
                elif root_name == "local":
                    ok = len(ref) > 1 and ref[1] in locals_
                elif root_name == "data":
                    ok = len(ref) > 2 and (ref[1], ref[2]) in data
                elif root_name == "module":
                    ok = len(ref) > 1 and ref[1] in modules
                elif root_name in BUILTIN_ROOTS or root_name in iters:
                    ok = True
                else:
                    ok = len(ref) > 1 and (ref[0], ref[1]) in resources
                if not ok:
                    bad(f"{w}: {'.'.join(ref)} refers to nothing declared")
            for c in a["calls"]:
                if c["name"] in FILE_FUNCS:
                    if not isinstance(c["arg0"], str):
                        bad(f"{w}: {c['name']}() of a path that is not a constant")
                    else:
                        check_local_file(root, c["arg0"], w)
            if b["type"] == "module" and aname == "source":
                continue  # checked by check_module
            if aname in ("filename", "source_dir") and isinstance(a["value"], str):
                check_local_file(root, a["value"], w)
    tf_walk(top, check_block)

    rt = locals_.get("compatible_runtimes")
    if not rt or not any(c["name"] == "file" and isinstance(c["arg0"], str)
                         and rel(root, c["arg0"]) == RUNTIMES_FILE for c in rt["calls"]):
        bad(f"Terraform: local.compatible_runtimes must be read from {RUNTIMES_FILE}")
    layers = {k: b for k, b in resources.items() if k[0] == "aws_lambda_layer_version"}
    archs = set()
    for (typ, name), b in layers.items():
        a = b["attrs"]
        ca = a.get("compatible_architectures", {}).get("value")
        fname = a.get("filename", {}).get("value")
        arch = LAYER_ZIPS.get(rel(root, fname)) if isinstance(fname, str) else None
        if arch is None or ca != [arch]:
            bad(f"Terraform {typ}.{name}: compatible_architectures {ca} does not match its "
                f"filename ({fname})")
        archs.add(arch)
        if a.get("compatible_runtimes", {}).get("refs") != [["local", "compatible_runtimes"]]:
            bad(f"Terraform {typ}.{name}: compatible_runtimes must be local.compatible_runtimes")
    if archs != ARCHS or len(layers) != 2:
        bad(f"Terraform: layers publish {sorted(a or '?' for a in archs)}, expected one per "
            f"architecture of {sorted(ARCHS)}")

    funcs = {k: b for k, b in resources.items() if k[0] == "aws_lambda_function"}
    if not funcs:
        bad("Terraform: no example function")
    layer_arch = {f"{t}.{n}.arn": LAYER_ZIPS.get(rel(root, b["attrs"]["filename"]["value"]))
                  for (t, n), b in layers.items()
                  if isinstance(b["attrs"].get("filename", {}).get("value"), str)}
    for (typ, name), b in funcs.items():
        refs = {tuple(r[:2]) for r in b["attrs"].get("layers", {}).get("refs", [])
                if r[0] == "aws_lambda_layer_version"}
        if refs != set(layers):
            bad(f"Terraform {typ}.{name}: layers refer to {sorted(refs)}, expected each "
                "architecture's layer")
        arch_refs = b["attrs"].get("architectures", {}).get("refs", [])
        if len(arch_refs) != 1 or arch_refs[0][0] != "var":
            bad(f"Terraform {typ}.{name}: architectures must be [var.<a variable>]")
            continue
        # For each architecture, the layer the conditional picks is built for it (a wrong one
        # cannot even start): HashiCorp's evaluator with the variable set.
        for a in sorted(ARCHS):
            out = subprocess.run([inspect_bin, "-var", f"{arch_refs[0][1]}={a}"] +
                                 [f["file"] for f in files],
                                 capture_output=True, text=True, check=False)
            got = None
            if out.returncode == 0:
                for f in json.loads(out.stdout):
                    for blk in f["blocks"]:
                        if blk["type"] == "resource" and tuple(blk["labels"]) == (typ, name):
                            got = blk["attrs"].get("layers", {}).get("eval")
            archs = [layer_arch.get(g) for g in got] if isinstance(got, list) else got
            if archs != [a]:
                bad(f"Terraform {typ}.{name}: with {arch_refs[0][1]}={a} it gets layers built "
                    f"for {archs}")

    dash = [b for k, b in resources.items() if k[0] == "aws_cloudwatch_dashboard"]
    if len(dash) != 1 or not any(
            c["name"] == "file" and isinstance(c["arg0"], str) and rel(root, c["arg0"]) == DASHBOARD
            for c in dash[0]["attrs"].get("dashboard_body", {}).get("calls", [])):
        bad(f"Terraform: one aws_cloudwatch_dashboard whose body is file() of {DASHBOARD}")

    for k in resources:
        if k[0] in ("aws_iam_role_policy_attachment", "aws_iam_policy",
                    "aws_iam_role_policies_exclusive", "aws_iam_policy_attachment"):
            bad(f"Terraform {'.'.join(k)}: grants this check cannot see; keep one role policy")
    for k, b in resources.items():
        if k[0] == "aws_iam_role" and "managed_policy_arns" in b["attrs"]:
            bad(f"Terraform {'.'.join(k)}: managed_policy_arns grant actions this check cannot see")
    policies = [b for k, b in resources.items() if k[0] == "aws_iam_role_policy"]
    if len(policies) != 1:
        bad(f"Terraform: {len(policies)} aws_iam_role_policy, expected 1")
    for p in policies:
        refs = p["attrs"].get("policy", {}).get("refs", [])
        docs = [data.get((r[1], r[2])) for r in refs if r[0] == "data" and len(r) > 2]
        if len(docs) != 1 or docs[0] is None or docs[0]["labels"][0] != "aws_iam_policy_document":
            bad("Terraform aws_iam_role_policy: policy must be one aws_iam_policy_document's json")
            continue
        statements = []
        for st in tf_statements(docs[0]):
            a = st["attrs"]
            res_attr = a.get("resources", {})
            resources_v = res_attr.get("value")
            stmt = {"Sid": (a.get("sid") or {}).get("value", "?"),
                    "Effect": (a.get("effect") or {}).get("value", "Allow"),
                    "Action": (a.get("actions") or {}).get("value") or []}
            if "not_actions" in a or "not_resources" in a:
                stmt["NotAction"] = True
            if resources_v is not None:
                stmt["Resource"] = resources_v  # constant: only "*" is allowed, for STAR_ACTION
            else:
                stmt["Resource"] = [{"Ref": "named"}] if res_attr.get("refs") else ["?"]
            statements.append(stmt)
        check_statements(statements, {"named"}, "Terraform policy")


# --- publish.sh ----------------------------------------------------------------------------------

def check_publish(output, root, layer_dir):
    want_runtimes = runtimes(root)
    with open(output, encoding="utf-8") as f:
        lines = [line for line in f.read().splitlines() if line.strip()]
    archs = set()
    for line in lines:
        words = shlex.split(line)
        if words[:3] != ["aws", "lambda", "publish-layer-version"]:
            bad(f"publish: not a publish-layer-version command: {line}")
            continue
        opts = {}
        key = None
        for w in words[3:]:
            if w.startswith("--"):
                key = w
                opts[key] = []
            elif key:
                opts[key].append(w)
        arch = (opts.get("--compatible-architectures") or ["?"])[0]
        if opts.get("--compatible-architectures") != [arch] or arch not in ARCHS:
            bad(f"publish: --compatible-architectures {opts.get('--compatible-architectures')}")
        want_zip = "fileb://" + os.path.join(layer_dir, f"stash-{arch}.zip")
        if opts.get("--zip-file") != [want_zip]:
            bad(f"publish {arch}: --zip-file {opts.get('--zip-file')}, expected {want_zip}")
        if opts.get("--compatible-runtimes") != want_runtimes:
            bad(f"publish {arch}: --compatible-runtimes differ from {RUNTIMES_FILE}")
        if not (opts.get("--layer-name") or [""])[0].endswith("-" + arch):
            bad(f"publish {arch}: --layer-name {opts.get('--layer-name')} does not name the arch")
        archs.add(arch)
    if archs != ARCHS or len(lines) != 2:
        bad(f"publish: {len(lines)} commands for {sorted(archs)}, expected one per architecture")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["sam", "rendered", "terraform", "publish"])
    ap.add_argument("path")
    ap.add_argument("--root", required=True)
    ap.add_argument("--template")
    ap.add_argument("--layer-dir")
    ap.add_argument("--layers")
    ap.add_argument("--inspect", help="tests/tools/hcl_inspect, for the modules a file uses")
    a = ap.parse_args()
    root = os.path.abspath(a.root)
    if a.layers is not None:
        set_layers(a.layers)
    try:
        if a.what == "sam":
            check_sam(a.path, root)
        elif a.what == "rendered":
            check_rendered(a.path, a.template, root)
        elif a.what == "terraform":
            check_terraform(a.path, root, a.inspect)
        else:
            check_publish(a.path, root, a.layer_dir)
    except (yaml.YAMLError, OSError, ValueError, KeyError, TypeError, IndexError) as e:
        bad(f"{a.what} {a.path}: {type(e).__name__}: {e}")
    finish()


if __name__ == "__main__":
    main()
