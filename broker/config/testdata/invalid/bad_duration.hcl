kms "awskms" {
  purpose       = ["root"]
  timeout       = "5 seconds"
  start_timeout = "-1s"
}
