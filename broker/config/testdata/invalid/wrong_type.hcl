listener "tcp" {
  tls_disable = "maybe"
}
