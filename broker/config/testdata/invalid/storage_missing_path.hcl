storage "sqlite" {
}
