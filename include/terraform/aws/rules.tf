# Settings the module derives from its variables alone, by the rules of the
# ElastiCache API and the AWS provider (each cited). Nothing here reads a
# resource or a provider, so the tests evaluate this file with real Terraform
# (tests/aws/test_aws_module_static.py) although the provider cannot be
# downloaded there. aws-standin links to this file and sends the same values.
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
  transit_encryption_mode = var.engine == "redis" && local.major < 7 ? null : "required"

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
}
