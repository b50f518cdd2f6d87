kms "../hsm" {
  purpose     = ["root"]
  plugin_path = "/opt/hsm/plugin"
}
