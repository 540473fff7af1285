# TFLint for every module, example, env root and the bootstrap root (run per directory by
# tests/terraform/test_tools.py). Only the Terraform ruleset bundled with TFLint is used: the AWS ruleset is a
# plugin that TFLint downloads from GitHub releases, which this project's machines cannot reach.
config {
  call_module_type = "local"
}

plugin "terraform" {
  enabled = true
  preset  = "all"
}
