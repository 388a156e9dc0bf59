#!/usr/bin/env python3
"""A release-config validator as a team would write it instead of ours: the
contract (shared/spec/release-config-repo.md) read with PyYAML's libyaml
loader. The bench runs it beside ours on the same fleet, so the ratio is
measured, not assumed.

It does what the contract's core asks: every machine's inventory, every
deployment's compose file with its .env interpolation, the GPU claims in each
spelling (device_ids, count, service gpus, CDI devices, NVIDIA_VISIBLE_DEVICES
/ CUDA_VISIBLE_DEVICES in map or list form), the tensor-parallel size from the
serving engines' flags, the published host ports; then GPU001 (a GPU held
twice), GPU002 (not in the inventory), TP001 (TP x PP != GPUs), PORT001 (a
host port published twice) and INV001 (no inventory). Prints one summary line.
"""

import os
import re
import sys

import yaml

Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
COMPOSE_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
VAR = re.compile(r"\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")
TP_FLAGS = ("--tensor-parallel-size", "-tp", "--tp", "--tp-size", "--tp_size", "--num-shard")
PP_FLAGS = ("--pipeline-parallel-size", "-pp", "--pp", "--pp-size", "--pp_size")


def read_env(path):
    env = {}
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line or line.startswith("#") or "=" not in line:
                    continue
                key, value = line.split("=", 1)
                env[key.strip()] = value.strip().strip('"').strip("'")
    except FileNotFoundError:
        pass
    return env


def interpolate(text, env):
    def sub(m):
        if m.group(1) == "$":
            return "$"
        name = m.group(2) or m.group(5)
        op, arg = m.group(3), m.group(4) or ""
        value = env.get(name)
        if op in (":-", "-"):
            if value is None or (op == ":-" and value == ""):
                return arg
        elif op in (":?", "?"):
            if value is None or (op == ":?" and value == ""):
                raise ValueError(f"required variable {name} is missing: {arg}")
        elif op in (":+", "+"):
            return arg if value else ""
        return value or ""

    return VAR.sub(sub, text)


def words(command):
    if isinstance(command, list):
        return [str(w) for w in command]
    if isinstance(command, str):
        return command.split()
    return []


def flag(args, names):
    for i, arg in enumerate(args):
        for name in names:
            if arg == name and i + 1 < len(args):
                return args[i + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def env_map(environment):
    if isinstance(environment, dict):
        return {str(k): "" if v is None else str(v) for k, v in environment.items()}
    out = {}
    for item in environment or []:
        key, _, value = str(item).partition("=")
        out[key] = value
    return out


def gpu_claim(service, inventory_gpus):
    """The host GPU ids a service holds (None: none claimed)."""
    ids = []
    claimed = False
    devices = (((service.get("deploy") or {}).get("resources") or {}).get("reservations") or {}).get("devices") or []
    for device in devices + (service.get("gpus") or [] if isinstance(service.get("gpus"), list) else []):
        if not isinstance(device, dict):
            continue
        if "device_ids" in device:
            ids += [str(d) for d in device["device_ids"]]
            claimed = True
        elif "count" in device:
            claimed = True
            if device["count"] == "all" and inventory_gpus:
                ids += [str(g) for g in range(inventory_gpus)]
    if service.get("gpus") == "all" and inventory_gpus:
        ids += [str(g) for g in range(inventory_gpus)]
        claimed = True
    for device in service.get("devices") or []:
        text = str(device)
        if text.startswith("nvidia.com/gpu="):
            ids.append(text.split("=", 1)[1])
            claimed = True
    env = env_map(service.get("environment"))
    for key in ("NVIDIA_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES"):
        if key in env and not claimed:
            value = env[key]
            if value == "all" and inventory_gpus:
                ids += [str(g) for g in range(inventory_gpus)]
            elif value not in ("", "none", "void"):
                ids += [v.strip() for v in value.split(",")]
            claimed = True
            break
    return ids if claimed else None


def host_ports(service):
    ports = []
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            if port.get("published"):
                ports.append(int(str(port["published"]).split("-")[0]))
            continue
        parts = str(port).split(":")
        if len(parts) >= 2:
            ports.append(int(parts[-2].split("-")[0]))
    return ports


def validate(root):
    findings = []
    deployments = 0
    machines_dir = os.path.join(root, "machines")
    for machine in sorted(os.listdir(machines_dir)):
        mdir = os.path.join(machines_dir, machine)
        if not os.path.isdir(mdir):
            continue
        inventory = None
        inv_path = os.path.join(mdir, "machine.yaml")
        if os.path.exists(inv_path):
            with open(inv_path, encoding="utf-8") as f:
                inventory = yaml.load(f, Loader=Loader) or {}
        gpus_total = int(inventory.get("gpus", 0)) if inventory else None
        if inventory is None:
            findings.append(("INV001", machine, "no machine.yaml"))
        holders = {}
        published = {}
        for port in sorted(os.listdir(mdir)):
            pdir = os.path.join(mdir, port)
            if not port.isdigit() or not os.path.isdir(pdir):
                continue
            compose = next((os.path.join(pdir, n) for n in COMPOSE_NAMES if os.path.exists(os.path.join(pdir, n))), None)
            if compose is None:
                findings.append(("RC003", f"{machine}:{port}", "no compose file"))
                continue
            deployments += 1
            env = read_env(os.path.join(pdir, ".env"))
            with open(compose, encoding="utf-8") as f:
                text = f.read()
            try:
                data = yaml.load(interpolate(text, env), Loader=Loader) or {}
            except (yaml.YAMLError, ValueError) as e:
                findings.append(("RC001", compose, str(e)))
                continue
            for name, service in (data.get("services") or {}).items():
                if not isinstance(service, dict):
                    continue
                holder = f"{machine}:{port}/{name}"
                ids = gpu_claim(service, gpus_total)
                args = words(service.get("entrypoint")) + words(service.get("command"))
                env_vars = env_map(service.get("environment"))
                tp = flag(args, TP_FLAGS) or env_vars.get("NUM_SHARD")
                pp = flag(args, PP_FLAGS) or "1"
                for gpu in ids or []:
                    holders.setdefault(gpu, []).append(holder)
                    if gpus_total is not None and (not gpu.isdigit() or int(gpu) >= gpus_total):
                        findings.append(("GPU002", holder, f"GPU {gpu} not in the inventory"))
                if ids is not None and tp is not None:
                    try:
                        if int(tp) * int(pp) != len(ids):
                            findings.append(("TP001", holder, f"TP {tp} x PP {pp} on {len(ids)} GPUs"))
                    except ValueError:
                        pass
                for host in host_ports(service):
                    published.setdefault(host, []).append(holder)
        for gpu, held in holders.items():
            if len(held) > 1:
                findings.append(("GPU001", machine, f"GPU {gpu} held by {', '.join(held)}"))
        for host, held in published.items():
            if len(held) > 1:
                findings.append(("PORT001", machine, f"port {host} published by {', '.join(held)}"))
    return deployments, findings


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    deployments, findings = validate(root)
    codes = {}
    for code, _, _ in findings:
        codes[code] = codes.get(code, 0) + 1
    summary = ", ".join(f"{code} {n}" for code, n in sorted(codes.items()))
    print(f"{deployments} deployments, {len(findings)} findings ({summary})")
    return 1 if any(code in ("GPU001", "GPU002", "TP001", "PORT001", "RC001") for code in codes) else 0


if __name__ == "__main__":
    sys.exit(main())
