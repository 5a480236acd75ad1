package inventory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/daprfn/shop/runtime"
)

// Item is a catalog entry: a product and its initial and restock stock.
type Item struct {
	ID    string
	Name  string
	Stock int
}

// SeedCatalog is the seed's inventory.
var SeedCatalog = []Item{
	{ID: "product-1", Name: "Laptop", Stock: 10},
	{ID: "product-2", Name: "Mouse", Stock: 50},
	{ID: "product-3", Name: "Keyboard", Stock: 25},
}

// ParseCatalog reads "id:name:stock,id:name:stock" (the CATALOG variable).
func ParseCatalog(s string) ([]Item, error) {
	var items []Item
	for _, part := range strings.Split(s, ",") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		f := strings.Split(strings.TrimSpace(part), ":")
		if len(f) != 3 {
			return nil, fmt.Errorf("catalog entry %q: want id:name:stock, e.g. product-1:Laptop:10", part)
		}
		n, err := strconv.Atoi(f[2])
		if err != nil || n < 0 {
			return nil, fmt.Errorf("catalog entry %q: stock must be a whole number >= 0", part)
		}
		items = append(items, Item{ID: f[0], Name: f[1], Stock: n})
	}
	if len(items) == 0 {
		return nil, errors.New("catalog is empty: want id:name:stock,... (CATALOG)")
	}
	return items, nil
}

// Listed is one product of GET /inventory, in the seed's shape.
type Listed struct {
	Name  string `json:"name"`
	Stock int    `json:"stock"`
}

// Inventory is the seed's GET /inventory answer: product id -> product.
type Inventory map[string]Listed

// List returns every catalog product's current stock.
func (s *Service) List(ctx context.Context, _ struct{}) (Inventory, error) {
	products, err := s.products(ctx)
	if err != nil {
		return nil, err
	}
	out := make(Inventory, len(products))
	for i, p := range products {
		out[s.catalog[i].ID] = Listed{Name: p.Name, Stock: p.Stock}
	}
	return out, nil
}

// products reads every catalog product's stock, in catalog order, at once.
func (s *Service) products(ctx context.Context) ([]Product, error) {
	keys := make([]string, len(s.catalog))
	for i, it := range s.catalog {
		keys[i] = Key(it.ID)
	}
	items, err := s.store.BulkGet(ctx, keys)
	if err != nil {
		return nil, runtime.Unavailable(err, "reading stock failed, try again")
	}
	out := make([]Product, len(items))
	for i, it := range items {
		if !it.Found {
			out[i] = s.initial(s.catalog[i].ID)
		} else if err := json.Unmarshal(it.Value, &out[i]); err != nil {
			return nil, fmt.Errorf("stored stock of %s is corrupt (%q): %w", s.catalog[i].ID, it.Value, err)
		}
	}
	return out, nil
}
