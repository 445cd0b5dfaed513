package data

import (
	"fmt"
	"io"
)

// LoadImages loads a split of an image dataset by its run-config name
// (data.dataset: "mnist", "cifar10" or "celeba") at the config's
// image_size and channels, checking that the dataset can provide them:
// MNIST 28 or 32 (padded) with 1 or 3 channels, CIFAR-10 32 with 3, and
// CelebA any size with 3 (the paper's is 64). log receives CelebA's
// decoding and cache messages; it may be nil.
func LoadImages(dataset, root string, split Split, size, channels int, log io.Writer) (*Images, error) {
	switch dataset {
	case "mnist":
		return LoadMNIST(root, split, MNISTOptions{Size: size, Channels: channels})
	case "cifar10":
		if size != 32 || channels != 3 {
			return nil, fmt.Errorf("data: CIFAR-10 images are 3×32×32, not %d×%d×%d", channels, size, size)
		}
		return LoadCIFAR10(root, split)
	case "celeba":
		if channels != 3 || size <= 0 {
			return nil, fmt.Errorf("data: CelebA images have 3 channels and a positive size, not %d×%d×%d", channels, size, size)
		}
		return LoadCelebA(root, split, CelebAOptions{Size: size, Log: log})
	}
	return nil, fmt.Errorf("data: unknown image dataset %q (want mnist, cifar10 or celeba)", dataset)
}
