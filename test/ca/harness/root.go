package harness

// RepoRoot returns the project root: the nearest directory above the working
// directory that holds package.json (for suites that run the repo's scripts).
func RepoRoot() (string, error) { return repoRoot() }
