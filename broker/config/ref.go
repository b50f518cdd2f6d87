package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// maxRefFileSize caps a file:// setting. A setting is a credential, a key
// or a short identifier, never bulk data; the cap bounds memory when the
// path names a device or a large file by mistake.
const maxRefFileSize = 64 << 10

// Prefixes of setting values that refer to where the value really is.
const (
	envPrefix  = "env://"
	filePrefix = "file://"
)

// resolveRef returns the value a string setting stands for: the named
// environment variable for "env://NAME", the contents of the file for
// "file://PATH" (a regular file of at most 64 KiB; one trailing line break
// removed; a relative PATH is relative to brokerd's working directory), and
// value itself otherwise.
// An unset variable or an unreadable file is an error at rng naming the
// attribute, never the value or what it refers to.
//
// TODO: a literal value that starts with env:// or file:// cannot be
// written; there is no escape yet.
func resolveRef(attr, value string, rng hcl.Range) (string, *hcl.Diagnostic) {
	switch {
	case strings.HasPrefix(value, envPrefix):
		name := strings.TrimPrefix(value, envPrefix)
		if name == "" {
			return "", errorf(rng, "%s: env:// needs a variable name", attr)
		}
		v, ok := os.LookupEnv(name)
		if !ok {
			return "", errorf(rng, "%s: the environment variable it names is not set", attr)
		}
		return v, nil

	case strings.HasPrefix(value, filePrefix):
		path := strings.TrimPrefix(value, filePrefix)
		if path == "" {
			return "", errorf(rng, "%s: file:// needs a path", attr)
		}
		b, err := readFile(path, maxRefFileSize, true)
		if err != nil {
			return "", errorf(rng, "%s: cannot read the file it names: %s", attr, fileProblem(err))
		}
		s := strings.TrimSuffix(string(b), "\n")
		return strings.TrimSuffix(s, "\r"), nil
	}
	return value, nil
}

// fileProblem describes a read failure without the path, which is part of
// the setting's value.
func fileProblem(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "no such file"
	case errors.Is(err, fs.ErrPermission):
		return "permission denied"
	case errors.Is(err, errTooLarge):
		return fmt.Sprintf("larger than %d KiB", maxRefFileSize>>10)
	case errors.Is(err, errNotRegular):
		return errNotRegular.Error()
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return "read failed"
}
