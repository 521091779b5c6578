// Package ci holds the test that runs the example GitHub Actions workflow deploy/ci/policy-lint.yml
// locally: its shell steps, in order, against the repository's own policies in deploy/policies.
package ci
