// Empty: a Go package with an assembly file may declare functions without
// a body, which gnetconn.go does to reach gnet's own by linkname.
