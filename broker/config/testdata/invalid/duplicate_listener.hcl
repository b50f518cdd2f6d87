listener "tcp" {
  tls_disable = true
}

storage "sqlite" {
  path = "/var/lib/brokerd/broker.db"
}

listener "tcp" {
  tls_disable = true
}

storage "postgres" {
  url = "postgres://broker@db/broker"
}

plugins {}
plugins {}
