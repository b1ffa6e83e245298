#!/usr/bin/python3
"""Validates CloudWatch EMF lines: the official schema (draft-07) plus the spec and service rules
the schema misses (tests/data/emf-vectors/README.md).

    emf_validate.py SCHEMA FILE...

Every line of every FILE is one document.  Prints one "invalid: FILE:LINE: reason" per bad line
and exits 1 if there is any, 0 if every line is valid, 2 on usage errors.
"""
import json
import math
import sys

import jsonschema

MAX_METRICS = 100
MAX_VALUES = 100
MAX_DIM_VALUE = 1024


def _no_constants(name):
    raise ValueError("non-JSON constant " + name)


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def extra_rules(doc):
    """The rules the schema does not encode; returns a reason or None."""
    if not isinstance(doc, dict):
        return "root is not an object"
    for d in doc["_aws"]["CloudWatchMetrics"]:
        if d["Namespace"].startswith("AWS/"):
            return "namespace starts with AWS/ (reserved)"
        if len(d["Metrics"]) > MAX_METRICS:
            return "more than %d metrics in a directive" % MAX_METRICS
        for dimset in d["Dimensions"]:
            for key in dimset:
                if key not in doc:
                    return "dimension %r has no root member" % key
                v = doc[key]
                if not isinstance(v, str):
                    return "dimension %r is not a string" % key
                if not v.strip() or len(v) > MAX_DIM_VALUE:
                    return "dimension %r is blank or longer than %d" % (key, MAX_DIM_VALUE)
                if any(ord(c) > 0x7F for c in v):
                    return "dimension %r is not ASCII" % key
        for m in d["Metrics"]:
            name = m["Name"]
            if name not in doc:
                return "metric %r has no root member" % name
            v = doc[name]
            if isinstance(v, list):
                if not v:
                    return "metric %r is an empty array" % name
                if len(v) > MAX_VALUES:
                    return "metric %r has more than %d values" % (name, MAX_VALUES)
                if not all(_is_number(x) for x in v):
                    return "metric %r has a value that is not a finite number" % name
            elif not _is_number(v):
                return "metric %r is not a finite number or array of numbers" % name
    return None


def check_line(validator, line):
    try:
        doc = json.loads(line, parse_constant=_no_constants)
    except ValueError as e:
        return "not JSON: %s" % e
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
    if errors:
        return "schema: %s at %s" % (errors[0].message, "/".join(map(str, errors[0].path)))
    return extra_rules(doc)


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        schema = json.load(f)
    validator = jsonschema.Draft7Validator(schema)
    bad = 0
    lines = 0
    for path in argv[2:]:
        with open(path, encoding="utf-8", errors="strict") as f:
            text = f.read()
        for i, line in enumerate(text.split("\n")):
            if not line and i == len(text.split("\n")) - 1:
                continue  # the newline that ends the last line
            lines += 1
            reason = check_line(validator, line)
            if reason:
                bad += 1
                print("invalid: %s:%d: %s" % (path, i + 1, reason))
    if lines == 0:
        print("invalid: no document given")
        return 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
