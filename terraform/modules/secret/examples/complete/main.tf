provider "aws" {
  region = var.region
}

module "secret" {
  source = "../../"

  name      = "/email-ingest/example/api-token"
  kms_alias = "email-ingest-example-api-token"

  clients_path = "/email-ingest/example/clients"
  clients = {
    acme   = {}
    globex = { description = "Token of the example client globex." }
  }

  tags = {
    Project = "email-ingest"
    Example = "secret-complete"
  }
}
