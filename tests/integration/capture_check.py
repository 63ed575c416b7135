"""Checks the audit trail's capture references against the capture store, as a reader would.

Usage: capture_check.py SCHEMA AUDIT STORE SPEC...

Every record must be valid under SCHEMA.  Each SPEC is PATH|REQ|RESP|REQ_CODINGS|RESP_CODINGS:
the one record whose url.path is PATH must name a request body kept equal to the file REQ
(or its first bytes, marked truncated, when REQ is longer) and likewise a response body
for RESP; "-" means that body must not be captured.  A coding of "gzip" means the kept
body must be gzip as sent: the file REQ (or RESP) then holds the decoded text, compared
after decompressing.  Each kept body's file must be named by its own SHA-256.
"""
import gzip
import hashlib
import json
import os
import sys

import jsonschema


def kept(store, ref):
    digest = ref["sha256"]
    with open(os.path.join(store, digest[:2], digest), "rb") as f:
        data = f.read()
    assert hashlib.sha256(data).hexdigest() == digest, ("file not named by its hash", digest)
    assert len(data) == ref["bytes"], (len(data), ref)
    return data


def main():
    schema, audit, store = sys.argv[1:4]
    validator = jsonschema.Draft202012Validator(json.load(open(schema)))
    with open(audit) as f:
        records = [json.loads(line) for line in f]
    for r in records:
        validator.validate(r)
    for spec in sys.argv[4:]:
        path, req, resp, req_codings, resp_codings = spec.split("|")
        match = [r for r in records if r.get("url", {}).get("path") == path]
        assert len(match) == 1, (path, len(match), records)
        capture = match[0]["sluice"].get("capture", {})
        for key, want_file, codings in (("request", req, req_codings),
                                        ("response", resp, resp_codings)):
            if want_file == "-":
                assert key not in capture, (path, key, capture)
                continue
            ref = capture[key]
            assert ref.get("codings", "") == ("" if codings == "-" else codings), (path, ref)
            got = kept(store, ref)
            with open(want_file, "rb") as f:
                want = f.read()
            if codings == "gzip":
                assert gzip.decompress(got) == want, (path, key)
                assert "truncated" not in ref, (path, ref)
            elif len(want) > len(got):
                assert ref.get("truncated") is True and want.startswith(got), (path, ref)
            else:
                assert got == want and "truncated" not in ref, (path, ref)
    print("capture check: %d records, %d specs hold" % (len(records), len(sys.argv) - 4))


main()
