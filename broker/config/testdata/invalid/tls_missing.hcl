listener "tcp" {
  address       = "0.0.0.0:9200"
  tls_cert_file = "/etc/brokerd/tls.crt"
}
