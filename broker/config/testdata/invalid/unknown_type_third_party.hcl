kms "hsm" {
  purpose = ["root"]
  slot    = 1
}
