// Command hello is a main package for the binaries tests to build: it
// prints its first argument back, so a test can tell it really ran.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: hello WORD")
		os.Exit(2)
	}
	fmt.Println("hello " + os.Args[1])
}
