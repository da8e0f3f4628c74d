// Package browserpeer holds the tests that drive the web package
// (@sealmesh/web, web/) in the system Chromium against real Go hosts: a page
// dials a Go seed over WebTransport, presents a ticket and fetches verified
// segments. It has no code of its own.
package browserpeer
