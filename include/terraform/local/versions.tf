terraform {
  # terraform_data needs >= 1.4; 1.5 is the floor this project supports.
  # No providers: the module uses only the built-in terraform_data resource and
  # local-exec provisioners, so `terraform init` never downloads anything.
  required_version = ">= 1.5"
}
