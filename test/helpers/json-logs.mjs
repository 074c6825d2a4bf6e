// Loaded into every test process (package.json tap.node-arg): the CLI runs the tests start read their log
// lines as JSON, so they ask for it; the tests of the formats themselves remove this variable.
process.env.KMM_LOG_FORMAT ??= 'json';
