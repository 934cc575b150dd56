package exactlyonce

import (
	"testing"

	"github.com/b74fc070/rocketmq-exactlyonce/internal/memdb"
	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

// fakeStore is a real DataSource over the in-memory driver of
// internal/memdb: the listener's unit tests run the real claim and delivery
// transaction without a server.
type fakeStore struct {
	*mqdatasource.DataSource
	mem *memdb.DB
}

func newFakeStore(t *testing.T) *fakeStore {
	t.Helper()
	mem := memdb.New()
	ds, err := mqdatasource.OpenConnector(mem, mqdatasource.WithDialect(mqdatasource.PostgreSQL()), mqdatasource.WithSchemaCheck(false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ds.Close() })
	return &fakeStore{DataSource: ds, mem: mem}
}

func (s *fakeStore) markCommitted(id string)    { s.mem.Record(id) }
func (s *fakeStore) isCommitted(id string) bool { return s.mem.Recorded(id) }
