kms "hsm" {
  purpose       = ["root"]
  plugin_path   = "/opt/hsm/plugin"
  plugin_sha256 = "abc123"
}
