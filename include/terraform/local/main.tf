locals {
  per_shard  = var.replicas + 1
  node_count = var.shards * local.per_shard

  # Same plan as cachebench.targets.local.servers.plan_nodes: ElastiCache-style ids,
  # node i (shard-major) on base_port + i, member 001 of each shard is the primary.
  nodes = flatten([
    for s in range(var.shards) : [
      for m in range(local.per_shard) : {
        node_id = format("%04d-%03d", s + 1, m + 1)
        # a miniature's node: its own address (2 + i) in the deployment's subnet
        host  = var.miniature == null ? "127.0.0.1" : cidrhost(var.miniature.subnet, 2 + s * local.per_shard + m)
        port  = var.base_port + s * local.per_shard + m
        role  = m == 0 ? "primary" : "replica"
        shard = s + 1
      }
    ]
  ])

  # Everything `up` needs. No secret: `up` makes the password itself and keeps
  # it in <runtime_dir>/auth (0600, outside the results folder), so neither tfvars
  # nor state ever hold it.
  config = {
    deployment_id            = var.deployment_id
    campaign                 = var.campaign
    run_id                   = var.run_id
    engine                   = var.engine
    engine_version           = var.engine_version
    server_binary            = var.server_binary
    cluster_mode             = var.cluster_mode
    shards                   = var.shards
    replicas                 = var.replicas
    base_port                = var.base_port
    maxmemory_bytes          = var.maxmemory_bytes
    maxmemory_policy         = var.maxmemory_policy
    io_threads               = var.io_threads
    state_dir                = var.state_dir
    runtime_dir              = var.runtime_dir
    metrics_interval_seconds = var.metrics_interval_seconds
    expires_at               = var.expires_at
    miniature                = var.miniature
  }
}

resource "terraform_data" "servers" {
  # Any change to what runs replaces the servers (down, then up).
  triggers_replace = local.config

  # What the provisioners need. The destroy provisioner may only read self, so
  # everything it uses lives here (input changes alone update in place).
  input = {
    state_dir   = var.state_dir
    python      = var.python
    pythonpath  = var.pythonpath
    config_json = jsonencode(local.config)
  }

  lifecycle {
    precondition {
      condition     = var.cluster_mode || var.shards == 1
      error_message = "cluster_mode = false allows exactly 1 shard (got ${var.shards})."
    }
    precondition {
      condition     = var.base_port + local.node_count - 1 <= (var.cluster_mode ? 55535 : 65535)
      error_message = "ports ${var.base_port}..${var.base_port + local.node_count - 1} do not fit below ${var.cluster_mode ? 55535 : 65535} (cluster bus ports are port + 10000)."
    }
  }

  # Start the servers (or verify they already run). `up` is all-or-nothing: if
  # it fails it stops what it started, because Terraform does NOT run destroy
  # provisioners of a tainted resource (one whose create failed).
  provisioner "local-exec" {
    command = <<-EOT
      set -e
      mkdir -p "$STATE_DIR"
      chmod 700 "$STATE_DIR"
      printf '%s\n' "$CONFIG_JSON" > "$STATE_DIR/config.json"
      exec "$PYTHON" -m cachebench.targets.local up --config "$STATE_DIR/config.json"
    EOT
    environment = {
      STATE_DIR   = self.input.state_dir
      CONFIG_JSON = self.input.config_json
      PYTHON      = self.input.python
      PYTHONPATH  = self.input.pythonpath
    }
  }

  # Stop the agent and every server, free the ports, delete the runtime_dir (the secrets).
  provisioner "local-exec" {
    when    = destroy
    command = "exec \"$PYTHON\" -m cachebench.targets.local down --state-dir \"$STATE_DIR\""
    environment = {
      STATE_DIR  = self.input.state_dir
      PYTHON     = self.input.python
      PYTHONPATH = self.input.pythonpath
    }
  }
}
