package main

import (
	"context"
	"errors"
)

func launch(ctx context.Context, args []string) error {
	return errors.New("run: not implemented yet")
}
