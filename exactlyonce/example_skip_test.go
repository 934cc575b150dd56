package exactlyonce

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

// dbExamples are the examples that consume from rocketmqtest's in-process
// broker with the real client into the database named by MYSQL_DSN
// (example_db_test.go).
var dbExamples = []string{
	"ExampleConsumer_Subscribe",
	"ExampleTxListener_pushConsumer",
	"ExampleBatchListener",
}

// skipDBExamples makes the test run skip dbExamples, saying so on stderr,
// when MYSQL_DSN is unset or under -race (rocketmq-client-go v2.1.2 races
// with itself, see skipIfRace). Call it in TestMain, before m.Run.
func skipDBExamples() {
	var why string
	switch {
	case os.Getenv("MYSQL_DSN") == "":
		why = "MYSQL_DSN is not set (run under scripts/testdb.sh)"
	case raceEnabled:
		why = "under -race rocketmq-client-go v2.1.2 has data races of its own; run without -race"
	default:
		return
	}
	flag.Parse()
	skip := "^(" + strings.Join(dbExamples, "|") + ")$"
	if prev := flag.Lookup("test.skip").Value.String(); prev != "" {
		skip = prev + "|" + skip
	}
	if err := flag.Set("test.skip", skip); err != nil {
		panic(err)
	}
	fmt.Fprintf(os.Stderr, "exactlyonce: skipping the database examples (%s): %s\n", strings.Join(dbExamples, ", "), why)
}
