package orderstore

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"

	"github.com/daprfn/shop/bindings"
)

// Writer archives records through one output binding.
type Writer struct {
	out    bindings.OutputBinding
	name   string
	typeOf bindings.TypeResolver
	table  string
}

// Component types a Writer supports.
const (
	LocalStorage = "bindings.localstorage"
	PostgreSQL   = "bindings.postgresql"
	postgresAlt  = "bindings.postgres"
)

var tableName = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// New returns a Writer for binding name, whose component type typeOf tells;
// table is the PostgreSQL table (created if missing by EnsureSchema).
func New(out bindings.OutputBinding, name string, typeOf bindings.TypeResolver, table string) (*Writer, error) {
	if table == "" {
		table = "orders"
	}
	if !tableName.MatchString(table) {
		return nil, fmt.Errorf("order table %q: want a plain lower-case SQL name", table)
	}
	return &Writer{out: out, name: name, typeOf: typeOf, table: table}, nil
}

func (w *Writer) files(ctx context.Context) (bool, error) {
	t, err := w.typeOf(ctx)
	if err != nil {
		return false, fmt.Errorf("order storage binding %q: %w", w.name, err)
	}
	switch t {
	case LocalStorage:
		return true, nil
	case PostgreSQL, postgresAlt:
		return false, nil
	}
	return false, fmt.Errorf("order storage binding %q has type %q: want bindings.localstorage or bindings.postgresql", w.name, t)
}

// EnsureSchema checks the binding's type and, for PostgreSQL, creates the
// table when it is missing.
func (w *Writer) EnsureSchema(ctx context.Context) error {
	files, err := w.files(ctx)
	if err != nil || files {
		return err
	}
	sql := "CREATE TABLE IF NOT EXISTS " + w.table + " (id text PRIMARY KEY, body jsonb NOT NULL, stored_at timestamptz NOT NULL DEFAULT now())"
	if _, err := w.out.InvokeBinding(ctx, w.name, "exec", nil, map[string]string{"sql": sql}); err != nil {
		return fmt.Errorf("create table %s through binding %s: %w", w.table, w.name, err)
	}
	return nil
}

// Write archives record under id.
func (w *Writer) Write(ctx context.Context, id string, record any) error {
	body, err := json.Marshal(record)
	if err != nil {
		return fmt.Errorf("encode record %s: %w", id, err)
	}
	files, err := w.files(ctx)
	if err != nil {
		return err
	}
	if files {
		_, err = w.out.InvokeBinding(ctx, w.name, "create", body, map[string]string{"fileName": id + ".json"})
	} else {
		params, _ := json.Marshal([]string{id, string(body)})
		_, err = w.out.InvokeBinding(ctx, w.name, "exec", nil, map[string]string{
			"sql":    "INSERT INTO " + w.table + " (id, body) VALUES ($1, $2::jsonb) ON CONFLICT (id) DO NOTHING",
			"params": string(params),
		})
	}
	if err != nil {
		return fmt.Errorf("archive %s through binding %s: %w", id, w.name, err)
	}
	return nil
}
