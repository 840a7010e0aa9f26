output "endpoint" {
  description = "Where to connect (shape of cachebench.models.Endpoint); auth_ref is the password file, not the password."
  value = {
    host         = local.nodes[0].host
    port         = local.nodes[0].port
    cluster_mode = var.cluster_mode
    tls          = false
    auth_ref     = "${var.runtime_dir}/auth"
    nodes        = local.nodes
  }
  # Known only once the servers run.
  depends_on = [terraform_data.servers]
}

output "state_dir" {
  description = "The point's state directory."
  value       = var.state_dir
}

output "metrics_file" {
  description = "CSV the metrics agent appends to (timestamp,point_id,node_id,metric,value,unit,period_s)."
  value       = "${var.state_dir}/metrics.csv"
}
