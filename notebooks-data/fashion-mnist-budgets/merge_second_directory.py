# Append the rows and ledgers of a second output directory of the same config (other seeds)
# to a first one. Both directories must come from the same config file (same columns).
import json, sys
a, b = sys.argv[1], sys.argv[2]
for name in ("epochs.csv", "runs.csv"):
    la = open(f"{a}/{name}").read().splitlines()
    lb = open(f"{b}/{name}").read().splitlines()
    assert la[0] == lb[0], f"{name}: headers differ"
    ids = {l.split(",")[0] for l in la[1:]} if name == "runs.csv" else set()
    rows = [l for l in lb[1:] if l.split(",")[0] not in ids]
    with open(f"{a}/{name}", "a") as f:
        for l in rows: f.write(l + "\n")
    print(name, "appended", len(rows))
ma = json.load(open(f"{a}/manifest.json")); mb = json.load(open(f"{b}/manifest.json"))
have = {r["run_id"] for r in ma["runs"]}
extra = [r for r in mb["runs"] if r["run_id"] not in have]
ma["runs"] += extra
json.dump(ma, open(f"{a}/manifest.json", "w"), indent=2)
print("manifest runs appended", len(extra))
