// Package console holds the building blocks of the web console served under /console:
// argon2id password hashes for local console accounts, a per-account lock-out after
// repeated wrong passwords, server-side sessions with idle and absolute timeouts, and the
// request guard (security headers, CSRF token, Origin and Sec-Fetch-Site checks).
//
// The pieces are pure where they decide: the clock is injected, nothing here reads the
// database or the network.
//
// Cookies: the session cookie is named "__Host-ostiary-console" and is always Secure,
// HttpOnly, SameSite=Lax, Path=/. Browsers accept Secure cookies from http://127.0.0.1 and
// http://localhost (both are potentially trustworthy origins), so plain-http development on
// a loopback listener works without weakening the cookie; on any other listener the console
// requires TLS (see RequireTLSOrLoopback). There is no flag that drops Secure.
package console
