module github.com/mollify/mollify

go 1.24

require github.com/sugarme/gotch v0.9.1

// build/gotch is gotch v0.9.1 from the module cache with patches/ applied;
// `make setup` creates it.
replace github.com/sugarme/gotch => ./build/gotch
