"""Programs the isolation tests run inside sandboxes (python3 in mleb-test-python).

Each prints one JSON line, prefixed with RESULT=, for the test to read from the output.
"""

# The agent's side of MLE-bench's /validate: post(csv) is the endpoint's reply (bytes).
POST_TO_VALIDATE = r"""
import urllib.request
def post(csv):
    boundary = "mlebboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"submission.csv\"\r\nContent-Type: text/csv\r\n\r\n{csv}\r\n"
            f"--{boundary}--\r\n").encode()
    request = urllib.request.Request("http://localhost:5000/validate", data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    return urllib.request.urlopen(request, timeout=60).read()
"""

# Searches everything a sandbox can reach for the marker (given base64-encoded so that the
# search's own command line does not contain it), and checks validation still works.
SEARCH_AGENT = (
    POST_TO_VALIDATE
    + r"""
import base64, json, os, socket, sys, urllib.request
import grpc
from mleb.grader.v1 import grader_service_pb2 as pb, grader_service_pb2_grpc as pbg

marker = base64.b64decode(sys.argv[1])
found = []

def scan_file(path):
    try:
        with open(path, "rb") as f:
            tail = b""
            while chunk := f.read(1 << 20):
                if marker in tail + chunk:
                    found.append(path)
                    return
                tail = chunk[-len(marker):]
    except OSError:
        pass

for top in os.listdir("/"):
    if top in ("proc", "sys", "dev"):
        continue
    for folder, dirs, files in os.walk("/" + top):
        for name in dirs + files:
            if marker.decode() in name:
                found.append(os.path.join(folder, name))
        for name in files:
            path = os.path.join(folder, name)
            if os.path.isfile(path) and not os.path.islink(path):
                scan_file(path)
me = str(os.getpid())
for pid in filter(str.isdigit, os.listdir("/proc")):
    if pid != me:
        for what in ("environ", "cmdline"):
            scan_file(f"/proc/{pid}/{what}")
for what in ("mountinfo", "mounts", "environ"):
    scan_file(f"/proc/self/{what}")
found += [k for k, v in os.environ.items() if marker.decode() in k + v]

interfaces = sorted(line.split(":")[0].strip() for line in open("/proc/net/dev").readlines()[2:])
open_ports = []
for port in range(1, 65536):
    s = socket.socket()
    s.settimeout(0.2)
    # Skip TCP self-connects (the scan's own ephemeral port), which always "succeed".
    if s.connect_ex(("127.0.0.1", port)) == 0 and s.getsockname()[1] != port:
        open_ports.append(port)
        try:
            s.sendall(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
            reply = s.recv(65536)
            if marker in reply:
                found.append(f"127.0.0.1:{port}")
        except OSError:
            pass
    s.close()
remote = {}
for host in ("172.17.0.1", "10.0.0.1", "192.168.0.1", "1.1.1.1", "8.8.8.8"):
    for port in (53, 80, 443, 50051, 50052):
        s = socket.socket()
        s.settimeout(1)
        remote[f"{host}:{port}"] = s.connect_ex((host, port))
        s.close()


sample = open("/home/data/sample_submission.csv").read()
valid = post(sample)
invalid = post("PassengerId,Transported\nnot-an-id,True\n")
if marker in valid + invalid:
    found.append("validate replies")

channel = grpc.insecure_channel(os.environ["MLEB_GRADER_ADDR"])
stub = pbg.GraderServiceStub(channel)
auth = (("authorization", "Bearer " + os.environ["MLEB_SANDBOX_TOKEN"]),)
def requests(kind, competition):
    yield kind(header=pb.SubmissionHeader(competition_id=competition))
    yield kind(chunk=sample.encode())
own = os.environ["COMPETITION"]
grpc_reply = stub.ValidateSubmission(requests(pb.ValidateSubmissionRequest, own), metadata=auth)
denied = {}
attempts = {
    "score": (stub.ScoreSubmission, pb.ScoreSubmissionRequest, own),
    "other": (stub.ValidateSubmission, pb.ValidateSubmissionRequest, "another-competition"),
}
for name, (call, kind, competition) in attempts.items():
    try:
        call(requests(kind, competition), metadata=auth)
        denied[name] = "ALLOWED"
    except grpc.RpcError as err:
        denied[name] = err.code().name
print("RESULT=" + json.dumps({
    "found": found, "interfaces": interfaces, "open_ports": open_ports, "remote": remote,
    "valid": json.loads(valid), "invalid": json.loads(invalid),
    "grpc_valid": grpc_reply.valid, "denied": denied, "uid": os.getuid(),
}), flush=True)
"""
)

# Reports what the sandbox looks like from inside: the MLE-bench layout and its permissions.
LAYOUT_AGENT = r"""
import json, os, subprocess
def writable(path):
    try:
        with open(os.path.join(path, ".probe"), "w") as f:
            f.write("x")
        return True
    except OSError:
        return False
open("/home/submission/submission.csv", "w").write(open("/home/data/sample_submission.csv").read())
open("/home/code/agent.py", "w").write("print('agent')\n")
open("/home/logs/agent.log", "w").write("a log line\n")
validate = subprocess.run(
    ["bash", "/home/validate_submission.sh", "/home/submission/submission.csv"],
    capture_output=True, text=True,
)
print("RESULT=" + json.dumps({
    "uid": os.getuid(), "gid": os.getgid(),
    "data": sorted(os.listdir("/home/data")),
    "description": open("/home/data/description.md").read(),
    "instructions": open("/home/instructions.txt").read(),
    "writable": {
        p: writable(p) for p in ("/home/data", "/home/submission", "/home/logs", "/home/code")
    },
    "validate": validate.stdout, "validate_rc": validate.returncode,
}), flush=True)
"""

# Tries the network in the ways the network tests check; argv: the JSON list of targets.
NETWORK_AGENT = r"""
import json, os, socket, subprocess, sys, urllib.request
targets = json.loads(sys.argv[1])
out = {"interfaces": sorted(l.split(":")[0].strip() for l in open("/proc/net/dev").readlines()[2:])}
for name, url in targets.get("direct", {}).items():
    try:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        out[name] = opener.open(url, timeout=3).read().decode()
    except Exception as exc:
        out[name] = "ERROR " + type(exc).__name__
for name, url in targets.get("proxied", {}).items():
    r = subprocess.run(
        ["curl", "-s", "-o", "/dev/stderr", "-w", "%{http_code}", "--max-time", "5", url],
        capture_output=True, text=True,
    )
    out[name] = [r.stdout, r.stderr]
for name, (host, port) in targets.get("connect", {}).items():
    s = socket.create_connection(("127.0.0.1", 3128), timeout=5)
    s.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    head = s.recv(4096).decode()
    body = ""
    if " 200 " in head.split("\r\n")[0]:
        s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        chunks = []
        while data := s.recv(65536):
            chunks.append(data)
        body = b"".join(chunks).decode()
    out[name] = [head.split("\r\n")[0], body]
    s.close()
r = subprocess.run(["bash", "/home/validate_submission.sh", "/home/data/sample_submission.csv"],
                   capture_output=True, text=True)
out["validate"] = r.stdout
print("RESULT=" + json.dumps(out), flush=True)
"""
