# port and the topology and TLS settings come from rules.tf (a link to the aws
# module's), so the stand-in sends moto what the real module sends ElastiCache.
locals {
  members = flatten([
    for s in range(var.shards) : [
      for m in range(var.replicas + 1) :
      var.cluster_mode ? format("%s-%04d-%03d", var.replication_group_id, s + 1, m + 1) : format("%s-%03d", var.replication_group_id, m + 1)
    ]
  ])
  host = var.cluster_mode ? "clustercfg.${var.replication_group_id}.standin.invalid" : "master.${var.replication_group_id}.standin.invalid"
  # moto (5.2.5) returns no reader endpoint, so the stand-in names one the way it names
  # the host: with cluster mode off only, like ElastiCache.
  reader_host = var.cluster_mode ? null : "replica.${var.replication_group_id}.standin.invalid"
  nodes = [
    for id in local.members : {
      node_id = id
      host    = local.host
      port    = local.port
      role    = endswith(id, "-001") ? "primary" : "replica"
      shard   = var.cluster_mode ? tonumber(split("-", id)[length(split("-", id)) - 2]) : 1
    }
  ]
  secret_name = "cachebench/${var.replication_group_id}/auth"
  config = {
    region                  = var.region
    replication_group_id    = var.replication_group_id
    engine                  = var.engine
    engine_version          = var.engine_version
    node_type               = var.node_type
    cluster_mode            = var.cluster_mode
    shards                  = var.shards
    replicas                = var.replicas
    num_cache_clusters      = local.num_cache_clusters
    num_node_groups         = local.num_node_groups
    replicas_per_node_group = local.replicas_per_node_group
    transit_encryption_mode = local.transit_encryption_mode
    secret_name             = local.secret_name
    tags = {
      "cachebench:campaign"   = var.campaign
      "cachebench:run"        = var.run_id
      "cachebench:deployment" = var.deployment_id
    }
  }
}

resource "terraform_data" "replication_group" {
  triggers_replace = local.config
  input            = { config_json = jsonencode(local.config) }

  lifecycle {
    precondition {
      condition     = var.cluster_mode || var.shards == 1
      error_message = "cluster_mode = false allows exactly 1 shard (got ${var.shards})."
    }
  }

  provisioner "local-exec" {
    command     = "exec \"$${CACHEBENCH_STANDIN_PYTHON:-python3}\" -m cachebench.aws.standin up \"$CONFIG_JSON\""
    environment = { CONFIG_JSON = self.input.config_json }
  }

  provisioner "local-exec" {
    when        = destroy
    command     = "exec \"$${CACHEBENCH_STANDIN_PYTHON:-python3}\" -m cachebench.aws.standin down \"$CONFIG_JSON\""
    environment = { CONFIG_JSON = self.input.config_json }
  }
}
