package faults

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// immutableFlag is FS_IMMUTABLE_FL from linux/fs.h: no process, root
// included, may write, truncate, rename or delete the file, or change a
// directory's entries, until the flag is cleared. It also stops writes
// through descriptors opened before it was set.
const immutableFlag = 0x10

// makeReadOnly makes dir and every file in it unwritable for the broker,
// root included, by setting the immutable attribute, and returns the
// function that undoes it. Permission bits would not do: root ignores
// them, and no one's writes through descriptors already open are checked
// against them. It skips the test where the attribute cannot be set (not
// root, or a file system without it).
func makeReadOnly(t *testing.T, dir string) (restore func()) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("list %s: %v", dir, err)
	}
	paths := []string{dir}
	for _, e := range entries {
		paths = append(paths, filepath.Join(dir, e.Name()))
	}

	var set []string
	restore = func() {
		for _, p := range set {
			if err := setImmutable(p, false); err != nil {
				t.Errorf("clear the immutable attribute of %s: %v", p, err)
			}
		}
		set = nil
	}
	t.Cleanup(restore) // leave nothing t.TempDir cannot remove
	// Files first, the directory last: once it is immutable nothing in it
	// can change, and restore clears it first.
	for i := len(paths) - 1; i >= 0; i-- {
		if err := setImmutable(paths[i], true); err != nil {
			restore()
			if errors.Is(err, syscall.ENOTTY) || errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.EPERM) {
				t.Skipf("read-only store test skipped: cannot set the immutable attribute on %s (%v); "+
					"it needs root (CAP_LINUX_IMMUTABLE) on a file system that has it, such as ext4", paths[i], err)
			}
			t.Fatalf("make %s immutable: %v", paths[i], err)
		}
		set = append([]string{paths[i]}, set...)
	}
	return restore
}

func setImmutable(path string, on bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	flags, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	if err != nil {
		return fmt.Errorf("get attributes: %w", err)
	}
	if on {
		flags |= immutableFlag
	} else {
		flags &^= immutableFlag
	}
	if err := unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, int(flags)); err != nil {
		return fmt.Errorf("set attributes: %w", err)
	}
	return nil
}

// mountTmpfs mounts a tmpfs of size bytes on a new directory and returns
// it; it is unmounted when the test ends. It skips the test when mounting
// is refused (not root, or no CAP_SYS_ADMIN in a container).
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	dir := t.TempDir()
	opts := fmt.Sprintf("size=%d,mode=0700", size)
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, opts); err != nil {
		t.Skipf("disk-full test skipped: cannot mount a %d-byte tmpfs on %s: %v (needs root with CAP_SYS_ADMIN)", size, dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount tmpfs %s: %v", dir, err)
		}
	})
	return dir
}

// fill writes a file into dir until the file system has no space left,
// and returns its path.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatalf("create filler: %v", err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			t.Fatalf("fill %s: %v", dir, err)
		}
	}
	// What is left is less than a chunk; take it byte-sized pieces at a
	// time so not one page stays free.
	small := make([]byte, 512)
	for {
		if _, err := f.Write(small); err != nil {
			break
		}
	}
	return path
}
