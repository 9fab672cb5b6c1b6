"""
Artifacts a deploy leaves behind: the plan text, the configuration, the outputs
and a gzipped tarball of them, all drawn from the session's resources.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import tarfile
from typing import Any

_HEADER = """\
Terraform used the selected providers to generate the following execution
plan. Resource actions are indicated with the following symbols:
  + create
 <= read (data resources)

Terraform will perform the following actions:
"""


def _address(resource: dict[str, Any], instance: dict[str, Any]) -> str:
    parts = [resource["module"]] if "module" in resource else []
    prefix = "data." if resource["mode"] == "data" else ""
    parts.append(f"{prefix}{resource['type']}.{resource['name']}")
    address = ".".join(parts)
    key = instance.get("index_key")
    if isinstance(key, int):
        return f"{address}[{key}]"
    if isinstance(key, str):
        return f'{address}["{key}"]'
    return address


def _plan_text(resources: list[dict[str, Any]]) -> str:
    lines = [_HEADER]
    creates = 0
    for resource in resources:
        for instance in resource["instances"]:
            address = _address(resource, instance)
            if resource["mode"] == "data":
                lines.append(f"  # {address} will be read during apply")
                lines.append(f' <= data "{resource["type"]}" "{resource["name"]}" {{')
            else:
                creates += 1
                lines.append(f"  # {address} will be created")
                lines.append(
                    f'  + resource "{resource["type"]}" "{resource["name"]}" {{'
                )
            lines.append("      + id = (known after apply)")
            lines.append("    }\n")
    lines.append(f"Plan: {creates} to add, 0 to change, 0 to destroy.\n")

    return "\n".join(lines)


_OUTPUT_EXPRESSIONS = {
    "db_password": "random_password.db.result",
    "api_token": "var.api_token",
    "db_endpoint": "aws_db_instance.main.endpoint",
    "vpc_id": "module.network.vpc_id",
    "host_ips": "{ for key, host in aws_instance.app : key => host.private_ip }",
}


def _main_tf(script: str, outputs: dict[str, Any]) -> str:
    blocks = [
        "terraform {\n  required_providers {\n"
        '    aws    = { source = "hashicorp/aws", version = "~> 5.60" }\n'
        '    random = { source = "hashicorp/random", version = "~> 3.6" }\n'
        "  }\n}\n",
        'variable "ami_id" {\n  type = string\n}\n',
        'variable "api_token" {\n  type      = string\n  sensitive = true\n}\n',
        'data "aws_caller_identity" "current" {}\n',
        'module "network" {\n  source = "./modules/network"\n}\n',
        'module "fleet" {\n  source  = "./modules/fleet"\n'
        "  subnets = module.network.private_subnet_ids\n}\n",
        'resource "random_password" "db" {\n  length  = 24\n  special = true\n}\n',
        'resource "aws_db_instance" "main" {\n  engine         = "postgres"\n'
        '  engine_version = "16.3"\n  username       = "app"\n'
        "  password       = random_password.db.result\n}\n",
        'resource "aws_instance" "app" {\n  for_each  = toset(["web-a", "web-b"])\n'
        "  ami       = var.ami_id\n"
        f'  user_data = file("${{path.module}}/scripts/{script}")\n}}\n',
        'resource "terraform_data" "install" {\n'
        f'  input = {{ script = "{script}" }}\n}}\n',
    ]
    for name, output in outputs.items():
        expression = _OUTPUT_EXPRESSIONS.get(name, "null")
        sensitive = "\n  sensitive = true" if output.get("sensitive") else ""
        blocks.append(f'output "{name}" {{\n  value = {expression}{sensitive}\n}}\n')

    return "\n".join(blocks)


def _tarball(files: dict[str, str]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))

    # mtime=0 keeps the bytes stable, so a pulled bundle only changes with its data.
    return gzip.compress(raw.getvalue(), mtime=0)


def _text(name: str, content_type: str, content: str) -> dict[str, str]:
    return {
        "name": name,
        "encoding": "text",
        "content_type": content_type,
        "content": content,
    }


def build_artifacts(
    script: str, resources: list[dict[str, Any]], outputs: dict[str, Any]
) -> list[dict[str, str]]:
    """
    Return plan.txt, main.tf, outputs.json and bundle.tar.gz (base64) for a session.
    """
    plan = _plan_text(resources)
    main_tf = _main_tf(script, outputs)
    outputs_json = json.dumps(outputs, indent=2, sort_keys=True) + "\n"
    script_text = f"#!/usr/bin/env bash\n# {script}\nset -euo pipefail\n"
    bundle = _tarball(
        {
            "plan.txt": plan,
            "main.tf": main_tf,
            "outputs.json": outputs_json,
            f"scripts/{script}": script_text,
        }
    )

    return [
        _text("plan.txt", "text/plain", plan),
        _text("main.tf", "text/plain", main_tf),
        _text("outputs.json", "application/json", outputs_json),
        {
            "name": "bundle.tar.gz",
            "encoding": "base64",
            "content_type": "application/gzip",
            "content": base64.b64encode(bundle).decode("ascii"),
        },
    ]
