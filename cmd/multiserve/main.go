// Command multiserve is a pre-fork HTTP server for Go http.Handlers.
package main

func main() {}
