# port, family and the topology and TLS settings come from rules.tf.
locals {
  tags = {
    "cachebench:campaign"   = var.campaign
    "cachebench:run"        = var.run_id
    "cachebench:deployment" = var.deployment_id
    "cachebench:expires-at" = formatdate("YYYY-MM-DD'T'hh:mm:ss'Z'", timeadd("1970-01-01T00:00:00Z", "${var.expires_at}s"))
  }

  host = var.cluster_mode ? aws_elasticache_replication_group.this.configuration_endpoint_address : aws_elasticache_replication_group.this.primary_endpoint_address
  # The reader endpoint spreads connections over the replicas (the primary when there
  # are none); the provider sets it with cluster mode off only.
  reader_host = var.cluster_mode ? null : aws_elasticache_replication_group.this.reader_endpoint_address
  members     = sort(tolist(aws_elasticache_replication_group.this.member_clusters))
  # Member cluster ids as rules.tf's member_ids describes them; member 001 is each
  # shard's first primary.
  nodes = [
    for id in local.members : {
      node_id = id
      host    = local.host # node endpoints are not attributes of the group: connect via its endpoint
      port    = local.port
      role    = endswith(id, "-001") ? "primary" : "replica"
      shard   = var.cluster_mode ? tonumber(split("-", id)[length(split("-", id)) - 2]) : 1
    }
  ]

  dashboard_series = 100 # rows of `metrics` a widget: GetMetricWidgetImage's documented limit for a graph
  dashboard_metrics = {
    "CPU (%)"                    = ["CPUUtilization", "EngineCPUUtilization"]
    "Network bytes"              = ["NetworkBytesIn", "NetworkBytesOut"]
    "Network allowance exceeded" = ["NetworkBandwidthInAllowanceExceeded", "NetworkBandwidthOutAllowanceExceeded", "NetworkPacketsPerSecondAllowanceExceeded"]
    "Memory"                     = ["DatabaseMemoryUsagePercentage", "Evictions"]
    "Connections"                = ["CurrConnections", "NewConnections"]
    "Commands"                   = ["GetTypeCmds", "SetTypeCmds", "CacheHits", "CacheMisses"]
  }
  dashboard_widgets = flatten([
    for title, names in local.dashboard_metrics : [
      for part, rows in chunklist([
        for pair in setproduct(names, local.member_ids) :
        ["AWS/ElastiCache", pair[0], "CacheClusterId", pair[1], "CacheNodeId", "0001"]
        ], local.dashboard_series) : {
        title   = "${var.deployment_id}: ${title}${part > 0 ? " (${part + 1})" : ""}"
        metrics = rows
      }
    ]
  ])
}

# ------------------------------------------------------------------ AUTH token

# With TLS only (ElastiCache takes an AUTH token only with in-transit encryption).
# The token comes from Secrets Manager's GetRandomPassword through an ephemeral
# resource: it is never in a plan, a log or the secret's state, only written to the
# secret (write-only secret_string_wo, once: version 1) and read back for the group,
# whose auth_token the state keeps (keep the state bucket encrypted and private).
# ElastiCache AUTH tokens: 16-128 printable chars without '"', '/', '@' or spaces.
ephemeral "aws_secretsmanager_random_password" "auth" {
  count               = var.transit_encryption ? 1 : 0
  password_length     = 64
  exclude_punctuation = true
}

resource "aws_secretsmanager_secret" "auth" {
  #checkov:skip=CKV2_AWS_57: the token lives as long as one deployment (hours) and is destroyed with it; rotation would only race the load
  #checkov:skip=CKV_AWS_149: a customer managed key is optional (kms_key_arn); without one Secrets Manager's AWS managed key encrypts it
  count                   = var.transit_encryption ? 1 : 0
  name                    = "cachebench/${var.replication_group_id}/auth"
  description             = "AUTH token of ElastiCache replication group ${var.replication_group_id} (cachebench deployment ${var.deployment_id})"
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = 0 # destroyed with the deployment: nothing to recover
}

resource "aws_secretsmanager_secret_version" "auth" {
  count                    = var.transit_encryption ? 1 : 0
  secret_id                = aws_secretsmanager_secret.auth[0].id
  secret_string_wo         = ephemeral.aws_secretsmanager_random_password.auth[0].random_password
  secret_string_wo_version = 1
}

data "aws_secretsmanager_secret_version" "auth" {
  count      = var.transit_encryption ? 1 : 0
  secret_id  = aws_secretsmanager_secret.auth[0].id
  version_id = aws_secretsmanager_secret_version.auth[0].version_id
}

# ------------------------------------------------------------------ network

resource "aws_elasticache_subnet_group" "this" {
  name        = var.replication_group_id
  description = "cachebench ${var.deployment_id}"
  subnet_ids  = var.subnet_ids
}

resource "aws_security_group" "cache" {
  name        = "${var.replication_group_id}-cache"
  description = "cachebench ${var.deployment_id}: engine port from the load generators only"
  vpc_id      = var.vpc_id
  # No egress rule: the cache never opens connections (Terraform removes AWS's default allow-all).
}

resource "aws_vpc_security_group_ingress_rule" "from_security_groups" {
  for_each                     = toset(var.allowed_security_group_ids)
  security_group_id            = aws_security_group.cache.id
  description                  = "engine port from load generators ${each.value}"
  ip_protocol                  = "tcp"
  from_port                    = local.port
  to_port                      = local.port
  referenced_security_group_id = each.value
}

resource "aws_vpc_security_group_ingress_rule" "from_cidrs" {
  for_each          = toset(var.allowed_cidr_blocks)
  security_group_id = aws_security_group.cache.id
  description       = "engine port from ${each.value}"
  ip_protocol       = "tcp"
  from_port         = local.port
  to_port           = local.port
  cidr_ipv4         = each.value
}

# ------------------------------------------------------------------ engine

resource "aws_elasticache_parameter_group" "this" {
  name        = var.replication_group_id
  family      = local.family
  description = "cachebench ${var.deployment_id}"

  parameter {
    name  = "cluster-enabled"
    value = var.cluster_mode ? "yes" : "no"
  }
  parameter {
    name  = "maxmemory-policy"
    value = var.maxmemory_policy
  }
}

resource "aws_cloudwatch_log_group" "slow" {
  #checkov:skip=CKV_AWS_338: benchmark logs are kept log_retention_days (default 14), not a year: they only explain one run
  #checkov:skip=CKV_AWS_158: a customer managed key is optional (kms_key_arn); CloudWatch Logs encrypts with its own key otherwise
  name              = local.log_groups.slow_log
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_cloudwatch_log_group" "engine" {
  #checkov:skip=CKV_AWS_338: benchmark logs are kept log_retention_days (default 14), not a year: they only explain one run
  #checkov:skip=CKV_AWS_158: a customer managed key is optional (kms_key_arn); CloudWatch Logs encrypts with its own key otherwise
  name              = local.log_groups.engine_log
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_elasticache_replication_group" "this" {
  #checkov:skip=CKV_AWS_191: a customer managed key is optional (kms_key_arn); at-rest encryption is always on, with the AWS managed key otherwise
  #checkov:skip=CKV2_AWS_50: automatic failover is on whenever it can be (cluster mode or replicas > 0); a single-node point has nothing to fail over to
  #checkov:skip=CKV_AWS_134: benchmark data is synthetic and lives one point: backups would cost time and money for nothing
  replication_group_id = var.replication_group_id
  description          = "cachebench ${var.campaign} ${var.deployment_id}"
  engine               = var.engine
  engine_version       = var.engine_version
  node_type            = var.node_type
  port                 = local.port
  parameter_group_name = aws_elasticache_parameter_group.this.name
  subnet_group_name    = aws_elasticache_subnet_group.this.name
  security_group_ids   = [aws_security_group.cache.id]

  cluster_mode               = var.cluster_mode ? "enabled" : "disabled"
  num_cache_clusters         = local.num_cache_clusters
  num_node_groups            = local.num_node_groups
  replicas_per_node_group    = local.replicas_per_node_group
  automatic_failover_enabled = local.automatic_failover_enabled
  multi_az_enabled           = local.multi_az_enabled

  transit_encryption_enabled = var.transit_encryption
  transit_encryption_mode    = local.transit_encryption_mode
  auth_token                 = var.transit_encryption ? data.aws_secretsmanager_secret_version.auth[0].secret_string : null
  at_rest_encryption_enabled = true
  kms_key_id                 = var.kms_key_arn

  auto_minor_version_upgrade = true
  snapshot_retention_limit   = 0
  apply_immediately          = true

  log_delivery_configuration {
    destination      = aws_cloudwatch_log_group.slow.name
    destination_type = "cloudwatch-logs"
    log_format       = "json"
    log_type         = "slow-log"
  }
  log_delivery_configuration {
    destination      = aws_cloudwatch_log_group.engine.name
    destination_type = "cloudwatch-logs"
    log_format       = "json"
    log_type         = "engine-log"
  }

  # The provider's own defaults, written out: cachebench.terraform gives each command
  # these plus a margin before it interrupts Terraform (TIMEOUTS there).
  timeouts {
    create = "60m"
    update = "40m"
    delete = "45m"
  }

  lifecycle {
    precondition {
      condition     = var.cluster_mode || var.shards == 1
      error_message = "cluster_mode = false allows exactly 1 shard (got ${var.shards})."
    }
    precondition {
      condition     = length(var.allowed_security_group_ids) + length(var.allowed_cidr_blocks) > 0
      error_message = "Name the load generators' security group (allowed_security_group_ids) or a CIDR: nothing could reach the engine port."
    }
  }
}

# ------------------------------------------------------------------ dashboard

# Each panel graphs its metrics for every node: one metric per row of `metrics`
# ([namespace, metric, dimension name, value, ...], a list of lists, as PutDashboard
# requires), at most local.dashboard_series rows per widget, node ids as ElastiCache names
# them (rules.tf), so the body is known when the plan is made.
resource "aws_cloudwatch_dashboard" "this" {
  dashboard_name = "cachebench-${var.replication_group_id}"
  dashboard_body = jsonencode({
    widgets = [
      for i, w in local.dashboard_widgets : {
        type   = "metric"
        x      = (i % 2) * 12
        y      = floor(i / 2) * 6
        width  = 12
        height = 6
        properties = {
          title   = w.title
          region  = var.region
          period  = 60
          stat    = "Average"
          view    = "timeSeries"
          metrics = w.metrics
        }
      }
    ]
  })
}
