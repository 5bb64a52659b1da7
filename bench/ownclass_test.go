package main

import (
	"reflect"
	"testing"
)

// TestOwnClasses: with --pkg or --bin, a --classes name that is not a
// built-in row becomes a row for that class; without, it stays unknown.
func TestOwnClasses(t *testing.T) {
	o := options{pkg: "./examples/customclass", classes: "sync,perconn"}
	if got, want := o.ownClasses(), []classSpec{{"perconn", "perconn", -1}}; !reflect.DeepEqual(got, want) {
		t.Errorf("ownClasses = %v, want %v", got, want)
	}
	o.pkg = ""
	if got := o.ownClasses(); got != nil {
		t.Errorf("without --pkg/--bin: %v", got)
	}
}
