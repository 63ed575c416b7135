#!/usr/bin/env python3
"""Runs the README's console examples and checks they still print what the README shows.

A console block preceded by the line "<!-- readme-test: SETUP -->" is run: each "$ CMD"
line through bash, its output compared line by line with the lines that follow it in the
README. "$ cat FILE" lines are fixtures: the lines shown become FILE. SETUP says what runs
beside the commands:
  none     nothing (sluice check, command-line errors)
  shipped  sluice with proxy/sluice.yaml and the shipped policies, CONNECT allowed to 443
           and the TLS origin, and its Unix listener in $XDG_RUNTIME_DIR (the temporary
           directory) for `sluice run --isolate`
  demo     sluice with the policy directory /tmp/demo-pol, its tools/demo.yaml being the
           README's yaml block that starts with "id: demo"
  inspect  sluice as in shipped, with "tls: inspect" added to a copy of the shipped
           organisation.yaml, its CA made by `sluice ca init` in certs/ (ca.pem, ca.key),
           and the TLS origin's c.pem trusted for origins (--upstream-ca)
An HTTP origin (index.html, v1/models) and a TLS origin for "localhost" run in every
setup. Everything listens on 127.0.0.1 on ports the kernel picks; the README's ports
(3128 sluice, 8000 the origin, 8443 the TLS origin), its checkout path (/work/main) and
/tmp/demo-pol are mapped onto this run's, in the commands and back in their output.
The blocks run in a temporary directory where build/, proxy/ and policies/ lead to this
build and checkout, and which is HOME: its .curlrc makes curl print what it prints to a
terminal (no progress meter; errors shown) though its output goes to a pipe here.

Usage: examples.py SOURCE_DIR SLUICE_BINARY
"""
import http.server
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time

README_PATH = "/work/main"
PORTS = {"3128": "proxy", "8000": "origin", "8443": "tls"}


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def start_origin(root, context=None):
    """Serves root on 127.0.0.1:0 (with TLS when context is given); returns the server."""
    handler = lambda *a, **k: Quiet(*a, directory=root, **k)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def start_sluice(binary, work, name, args):
    """Starts sluice with args; returns (process, port) once its ready file is written."""
    ready = os.path.join(work, name + ".ready")
    log = open(os.path.join(work, name + ".log"), "w")
    # Process identity off: the commands' ancestors (an IDE's terminal, a git hook) would
    # otherwise name a shipped tool and change what the examples print.
    proc = subprocess.Popen([binary, "--listen", "127.0.0.1:0", "--ready-file", ready,
                             "--resolv-conf", os.path.join(work, "resolv.conf"),
                             "--identify-processes", "off"] + args,
                            stdout=log, stderr=subprocess.STDOUT, cwd=work)
    for _ in range(1000):  # 10 s
        if os.path.exists(ready):
            text = open(ready).read()
            if text.endswith("\n"):
                return proc, text.split("\n")[0].rsplit(":", 1)[1]
        if proc.poll() is not None:
            break
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    sys.exit("sluice %s did not start:\n%s" % (name, open(log.name).read()))


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def blocks(readme):
    """Yields (setup, line number, [lines]) for each marked console block."""
    lines = readme.split("\n")
    i = 0
    while i < len(lines):
        m = re.match(r"<!-- readme-test: (\w+) -->$", lines[i])
        if m and i + 1 < len(lines) and lines[i + 1] == "```console":
            start, i = i + 2, i + 2
            while i < len(lines) and lines[i] != "```":
                i += 1
            yield m.group(1), start + 1, lines[start:i]
        i += 1


def steps(block):
    """Splits a block into (command, expected output lines)."""
    out = []
    for line in block:
        if line.startswith("$ "):
            out.append((line[2:], []))
        elif out:
            out[-1][1].append(line)
    return out


def timeless(lines):
    """The lines with what differs from run to run, such as curl's "after 0 ms", made equal."""
    return [re.sub(r"after [0-9]+ ms", "after N ms", line) for line in lines]


def main():
    src, binary = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    readme = open(os.path.join(src, "README.md")).read()
    work = tempfile.mkdtemp(prefix="sluice-readme-")
    procs = []
    failures = 0
    try:
        os.makedirs(os.path.join(work, "build"))
        os.symlink(binary, os.path.join(work, "build", "sluice"))
        for d in ("proxy", "policies"):
            os.symlink(os.path.join(src, d), os.path.join(work, d))
        with open(os.path.join(work, ".curlrc"), "w") as f:
            f.write("--silent\n--show-error\n")
        with open(os.path.join(work, "resolv.conf"), "w") as f:
            f.write("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")  # nothing: no internet

        site = os.path.join(work, "site")
        os.makedirs(os.path.join(site, "v1"))
        with open(os.path.join(site, "index.html"), "w") as f:
            f.write("hello from origin\n")
        with open(os.path.join(site, "v1", "models"), "w") as f:
            f.write('{"models": []}\n')
        # The TLS origin's own certificate, as the README's c.pem: not sluice's CA.
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", "k.pem", "-out", "c.pem",
                        "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                        "-days", "2"], cwd=work, check=True, capture_output=True)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(os.path.join(work, "c.pem"), os.path.join(work, "k.pem"))
        origin = start_origin(site)
        tls = start_origin(site, context)
        ports = {"origin": str(origin.server_address[1]), "tls": str(tls.server_address[1])}

        demo = re.search(r"```yaml\n(id: demo\n.*?)```", readme, re.S)
        if demo is None:
            sys.exit("README.md has no yaml block starting with 'id: demo'")
        demo_dir = os.path.join(work, "demo-pol")
        os.makedirs(os.path.join(demo_dir, "tools"))
        with open(os.path.join(demo_dir, "organisation.yaml"), "w") as f:
            f.write("{}\n")
        with open(os.path.join(demo_dir, "tools", "demo.yaml"), "w") as f:
            f.write(demo.group(1))

        inspect_dir = os.path.join(work, "inspect-pol")
        shutil.copytree(os.path.join(src, "policies"), inspect_dir)
        with open(os.path.join(inspect_dir, "organisation.yaml"), "a") as f:
            f.write("tls: inspect\n")
        os.makedirs(os.path.join(work, "certs"))
        ca = ["--ca-cert", "certs/ca.pem", "--ca-key", "certs/ca.key"]
        subprocess.run([binary, "ca", "init"] + ca, cwd=work, check=True, capture_output=True)

        proxies = {}
        # The shipped setup also has the Unix listener `sluice run --isolate` dials, in the
        # runtime directory that the commands below are given too.
        os.environ["XDG_RUNTIME_DIR"] = work
        for setup, args in (("shipped", ["--config", "proxy/sluice.yaml", "--connect-ports",
                                         "443," + ports["tls"], "--listen", "unix:sluice.sock"]),
                            ("demo", ["--policy-dir", demo_dir]),
                            ("inspect", ["--config", "proxy/sluice.yaml", "--policy-dir",
                                         inspect_dir, "--connect-ports", "443," + ports["tls"],
                                         "--upstream-ca", "c.pem"] + ca)):
            proc, port = start_sluice(binary, work, setup, args)
            procs.append(proc)
            proxies[setup] = port

        checked = 0
        for setup, lineno, block in blocks(readme):
            if setup not in ("none", "shipped", "demo", "inspect"):
                print("README.md:%d: unknown setup '%s'" % (lineno, setup))
                failures += 1
                continue
            here = dict(ports, proxy=proxies.get(setup, proxies["shipped"]))

            def to_run(text):
                for readme_port, role in PORTS.items():
                    text = re.sub(r"(?<![0-9])%s(?![0-9])" % readme_port, here[role], text)
                return text.replace("/tmp/demo-pol", demo_dir).replace(README_PATH, src)

            def to_readme(text):
                text = text.replace(demo_dir, "/tmp/demo-pol").replace(src, README_PATH)
                for readme_port, role in PORTS.items():
                    text = re.sub(r"(?<![0-9])%s(?![0-9])" % here[role], readme_port, text)
                return text

            for command, expected in steps(block):
                cat = re.match(r"cat (\S+)$", command)
                if cat:
                    with open(os.path.join(work, cat.group(1)), "w") as f:
                        f.write("\n".join(expected) + "\n")
                    continue
                run = subprocess.run(["bash", "-c", to_run(command)], cwd=work, timeout=30,
                                     env=dict(os.environ, HOME=work),
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                got = to_readme(run.stdout).rstrip("\n").split("\n")
                checked += 1
                if timeless(got) != timeless(expected):
                    failures += 1
                    print("README.md:%d: `%s` printed:" % (lineno, command))
                    print("\n".join("    " + g for g in got))
                    print("  but the README shows:")
                    print("\n".join("    " + e for e in expected))
        print("%d README commands checked, %d differ" % (checked, failures))
        if checked == 0:
            print("no marked console block found in README.md")
            failures += 1
    finally:
        for proc in procs:
            stop(proc)
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
