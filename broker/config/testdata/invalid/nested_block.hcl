kms "transit" {
  purpose = ["root"]
  tls {
    ca_cert = "/etc/ca.pem"
  }
}
