output "endpoint" {
  description = "Where to connect (shape of cachebench.models.Endpoint); auth_ref is the Secrets Manager ARN of the AUTH token, never the token (null with TLS off: no AUTH); reader_host is the reader endpoint (cluster mode off), else null."
  value = {
    host         = local.host
    port         = local.port
    cluster_mode = var.cluster_mode
    tls          = var.transit_encryption
    auth_ref     = var.transit_encryption ? aws_secretsmanager_secret.auth[0].arn : null
    nodes        = local.nodes
    reader_host  = local.reader_host
  }
  # The token exists in Secrets Manager before anyone is told where to look.
  depends_on = [aws_secretsmanager_secret_version.auth]
}

output "replication_group_id" {
  description = "The replication group (CloudWatch nodes are its member clusters)."
  value       = aws_elasticache_replication_group.this.id
}

output "member_clusters" {
  description = "Member cluster ids: the CacheClusterId dimension of each node's metrics."
  value       = local.members
}

output "auth_secret_arn" {
  description = "Secrets Manager ARN of the AUTH token (the load tasks' `secrets` valueFrom); null with TLS off."
  value       = var.transit_encryption ? aws_secretsmanager_secret.auth[0].arn : null
}

output "log_groups" {
  description = "CloudWatch log groups of the slow log and the engine log."
  value = {
    slow_log   = aws_cloudwatch_log_group.slow.name
    engine_log = aws_cloudwatch_log_group.engine.name
  }
}

output "dashboard_name" {
  description = "CloudWatch dashboard of the point's key metrics."
  value       = aws_cloudwatch_dashboard.this.dashboard_name
}
