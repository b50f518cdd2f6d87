storage "mysql" {
  url = "mysql://broker@db/broker"
}
