#!/usr/bin/env python3
"""render.py: deploy/sam/template.yaml made deployable, in build/sam/template.yaml.

    python3 deploy/sam/render.py [--out build/sam/template.yaml]

CloudFormation takes a dashboard body only as a JSON string inside the template, so the
template in the repository names the file instead (DashboardBody: 'render.py:<path>') and this
step puts the file's JSON there, as a !Sub string in which each "us-east-1" region of the file
becomes ${AWS::Region} (the stack's Region). It also makes the local CodeUri/ContentUri paths
absolute (and the nested alarm stack's TemplateURL), since the rendered template lives in another
folder. Standard library only.
"""
import argparse
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PLACEHOLDER = re.compile(r"^(?P<indent>\s*)DashboardBody: 'render\.py:(?P<path>[^']+)'\s*$")
LOCAL_URI = re.compile(
    r"^(?P<head>\s*(?:CodeUri|ContentUri|TemplateURL): )(?P<path>\.[^\s#]*)\s*$")
# The Region the dashboard file is written for (dashboards/make-dashboard.mjs's default).
FILE_REGION = "us-east-1"


def fail(msg):
    print(f"render.py: {msg}", file=sys.stderr)
    sys.exit(1)


def dashboard_sub(path):
    """The dashboard file as a one-line YAML !Sub string for the stack's Region."""
    try:
        with open(path, encoding="utf-8") as f:
            body = json.load(f)
    except (OSError, ValueError) as e:
        fail(f"cannot read the dashboard {path}: {e}")
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    if "${" in text:
        fail(f"{path} holds '${{', which !Sub would read as a variable")
    text = text.replace(json.dumps(FILE_REGION), '"${AWS::Region}"')
    return "!Sub '" + text.replace("'", "''") + "'"


def render(src, out):
    base = os.path.dirname(os.path.abspath(src))
    lines = []
    bodies = 0
    with open(src, encoding="utf-8") as f:
        for line in f:
            m = PLACEHOLDER.match(line)
            if m:
                path = os.path.normpath(os.path.join(base, m.group("path")))
                line = f"{m.group('indent')}DashboardBody: {dashboard_sub(path)}\n"
                bodies += 1
            m = LOCAL_URI.match(line)
            if m:
                path = os.path.normpath(os.path.join(base, m.group("path")))
                if not os.path.exists(path):
                    fail(f"{m.group('path')} ({path}) does not exist; for the layer zips run "
                         "`make layer` first")
                line = f"{m.group('head')}{path}\n"
            lines.append(line)
    if bodies != 1:
        fail(f"{src}: expected one DashboardBody: 'render.py:<file>' line, found {bodies}")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(lines)
    os.replace(tmp, out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--template", default=os.path.join(HERE, "template.yaml"))
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "sam", "template.yaml"))
    a = ap.parse_args()
    render(a.template, a.out)
    print(a.out)


if __name__ == "__main__":
    main()
