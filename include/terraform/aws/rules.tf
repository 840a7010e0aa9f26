# Settings the module derives from its variables alone, by the rules of the
# ElastiCache API and the AWS provider (each cited). Nothing here reads a
# resource or a provider, so the tests evaluate this file with Terraform alone
# (tests/aws/test_aws_module_static.py), each combination in milliseconds.
locals {
  port  = 6379
  major = tonumber(split(".", var.engine_version)[0])
  # Parameter group family of the engine version (redis 6.2 -> redis6.x, 7.x -> redis7; valkey 7/8).
  family = var.engine == "redis" ? (local.major == 6 ? "redis6.x" : "redis${local.major}") : "valkey${local.major}"

  # TransitEncryptionMode exists for online TLS migration, which ElastiCache has
  # only from Redis OSS 7.0 and Valkey 7.2 on; for Redis OSS 6.x the API refuses
  # it ("InvalidParameterCombination: Transit encryption mode is not supported
  # for engine version 6.2.6. Please use engine version 7.0.5 or higher."), so
  # 6.x sends no mode. TLS stays on (transit_encryption_enabled = true), and a
  # 6.x group, from before modes existed, accepts TLS connections only.
  # https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/in-transit-encryption-enable-python.html
  # https://registry.terraform.io/providers/hashicorp/aws/latest/docs/resources/elasticache_replication_group#transit_encryption_mode
  # Valkey's versions here (7.2 and later) all take a mode. Redis "7.0" resolves
  # to the newest 7.0.x, which is 7.0.5 or later.
  # With TLS off (transit_encryption = false) there is no mode to send either.
  transit_encryption_mode = !var.transit_encryption || (var.engine == "redis" && local.major < 7) ? null : "required"

  # Cluster mode off: one shard of num_cache_clusters = primary + replicas, the
  # provider's documented form; num_cache_clusters conflicts with num_node_groups
  # and replicas_per_node_group, and replicas_per_node_group can only be set with
  # num_node_groups. Cluster mode on: num_node_groups x replicas_per_node_group.
  # https://registry.terraform.io/providers/hashicorp/aws/latest/docs/resources/elasticache_replication_group#num_cache_clusters
  num_cache_clusters      = var.cluster_mode ? null : 1 + var.replicas
  num_node_groups         = var.cluster_mode ? var.shards : null
  replicas_per_node_group = var.cluster_mode ? var.replicas : null

  # Automatic failover must be on with cluster mode and needs a replica without it;
  # Multi-AZ needs automatic failover (and so a replica).
  automatic_failover_enabled = var.cluster_mode || var.replicas > 0
  multi_az_enabled           = var.replicas > 0

  # Member cluster ids as ElastiCache names them: <group>-<shard 4 digits>-<member 3
  # digits> with cluster mode on, <group>-<member 3 digits> with it off (member 001 is
  # each shard's first primary). Known before the group exists, so the dashboard's body
  # is in the plan.
  member_ids = var.cluster_mode ? flatten([
    for s in range(var.shards) : [
      for m in range(var.replicas + 1) : format("%s-%04d-%03d", var.replication_group_id, s + 1, m + 1)
    ]
    ]) : [
    for m in range(var.replicas + 1) : format("%s-%03d", var.replication_group_id, m + 1)
  ]

  # Log groups under /aws/vendedlogs/: ElastiCache's log delivery adds any other log
  # group to the account's CloudWatch Logs resource policy, which holds 5,120
  # characters, so deliveries would start failing after a few dozen deployments.
  # https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/AWS-logs-infrastructure-CWL.html
  log_groups = {
    slow_log   = "/aws/vendedlogs/cachebench/${var.replication_group_id}/slow-log"
    engine_log = "/aws/vendedlogs/cachebench/${var.replication_group_id}/engine-log"
  }
}
